// The modem class for the fixture.
#pragma once
