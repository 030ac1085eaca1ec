// A file of the at layer that includes upward: cmake/CheckLayers.cmake must refuse it.
#include "core/flows.hpp"
