# Compile settings of the test programs only (never of what ships: slmd, slmsim, slmctl, the libraries, the shim).
#
# Debug information: line tables only (-g1) in the test executables. A test TU of this project spends about a
# quarter of its compile time writing full DWARF for GoogleTest's and Asio's templates, and the suite is built
# twice (default and ASan). -g1 keeps file:line in backtraces, sanitizer reports and gdb's `bt`; only locals and
# types are gone (rebuild with -DSLMD_TEST_DEBUG_FLAGS=-g to step through a test with them). It changes no code:
# GCC generates the same instructions at every -g level.
set(SLMD_TEST_DEBUG_FLAGS "-g1" CACHE STRING "Debug-information flags of the test executables (empty: as the build type)")

if(SLMD_BUILD_TESTS AND SLMD_TEST_DEBUG_FLAGS)
  # Only the test directories this configuration added (sanitizer builds leave out preload/ and bench/).
  get_property(test_dirs DIRECTORY ${PROJECT_SOURCE_DIR}/tests PROPERTY SUBDIRECTORIES)
  foreach(dir unit integration libslmsock preload slmsim tls)
    if(NOT ${PROJECT_SOURCE_DIR}/tests/${dir} IN_LIST test_dirs)
      continue()
    endif()
    get_property(targets DIRECTORY ${PROJECT_SOURCE_DIR}/tests/${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
      get_target_property(type ${target} TYPE)
      # slmsim itself ships (package slmsim); its library and main keep the build type's debug information.
      if(type STREQUAL "EXECUTABLE" AND NOT target STREQUAL "slmsim")
        # Only where the build type asks for debug information (RelWithDebInfo, Debug): not into a Release build.
        target_compile_options(${target} PRIVATE "$<$<CONFIG:RelWithDebInfo,Debug>:${SLMD_TEST_DEBUG_FLAGS}>")
      endif()
    endforeach()
  endforeach()
endif()
