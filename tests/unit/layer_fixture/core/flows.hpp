// A core header for the fixture.
#pragma once
