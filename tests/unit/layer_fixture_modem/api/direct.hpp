// An api file that reaches past the modem interfaces: cmake/CheckLayers.cmake must refuse it.
#include "modem/modem.hpp"
