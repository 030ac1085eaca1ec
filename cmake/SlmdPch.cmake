# Precompiled headers for the targets whose translation units spend most of their front-end time in the same
# headers (Boost.Asio, fmt, GoogleTest): the suite's build time (scripts/test.sh builds the tree twice).
# Included by the top-level CMakeLists.txt after every subdirectory, so the targets' own CMakeLists stay about
# what they build. SLMD_PCH=OFF builds without them (e.g. to check that every file includes what it uses).
#
# Rules for the lists below:
#  * only headers from outside the project (a project header would rebuild every PCH user on each edit);
#  * a PCH is shared (REUSE_FROM) only between targets whose compile flags the PCH cares about are equal: GCC
#    rejects a PCH built with other -f/-m options (e.g. -fPIC for a library vs -fPIE for an executable), and
#    -Winvalid-pch with -Werror turns that into a build error instead of a silent full parse;
#  * targets that are not always built (fuzzers, benchmarks, preload tests) get nothing: no PCH to go stale.
option(SLMD_PCH "Precompile the heavy common headers (Boost.Asio, fmt, GoogleTest)" ON)
if(NOT SLMD_PCH)
  return()
endif()

set(SLMD_PCH_STD <algorithm> <chrono> <cstdint> <cstring> <deque> <functional> <map> <memory> <optional>
  <string> <string_view> <vector>)
set(SLMD_PCH_ASIO
  <boost/asio/any_io_executor.hpp> <boost/asio/awaitable.hpp> <boost/asio/co_spawn.hpp>
  <boost/asio/io_context.hpp> <boost/asio/ip/tcp.hpp> <boost/asio/ip/udp.hpp> <boost/asio/post.hpp>
  <boost/asio/posix/stream_descriptor.hpp> <boost/asio/redirect_error.hpp> <boost/asio/steady_timer.hpp>
  <boost/asio/use_awaitable.hpp> <boost/asio/write.hpp>)
set(SLMD_PCH_GTEST <gtest/gtest.h>)

# GCC 12.2 (Debian 12) has false positives of its middle-end object-size warnings inside libstdc++'s std::string
# (GCC bugs 105329, 105651: memcpy "out of the bounds"/"reading N bytes from a region of size 16" in basic_string's
# move, append and operator+, fixed in 12.3). Whether they fire depends on inlining decisions, and a PCH changes
# those: with the PCH, files that compile cleanly without it (daemon/modem/admin_command.cpp,
# tests/slmsim/data_mode.cpp, tests/integration/admin_test.cpp) stop on -Werror. So targets with a PCH do without
# these four warnings on GCC 12; other compilers and the targets without a PCH keep them (and ASan checks the
# same bounds at run time in the sanitizer pass).
set(SLMD_PCH_GCC12_WARNINGS "")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  set(SLMD_PCH_GCC12_WARNINGS -Wno-array-bounds -Wno-stringop-overflow -Wno-stringop-overread -Wno-restrict)
endif()

# The PCH of `target`, in C++ translation units only (some targets also compile C).
function(slmd_pch target)
  if(TARGET ${target})
    list(TRANSFORM ARGN PREPEND "$<$<COMPILE_LANGUAGE:CXX>:" OUTPUT_VARIABLE headers)
    list(TRANSFORM headers APPEND ">")
    target_precompile_headers(${target} PRIVATE ${headers})
    target_compile_options(${target} PRIVATE ${SLMD_PCH_GCC12_WARNINGS})  # C++-only targets
  endif()
endfunction()

# `target` uses the PCH of `donor` (same language standard, definitions that matter, -fPIC/-fPIE, sanitizers).
function(slmd_pch_reuse target donor)
  if(TARGET ${target} AND TARGET ${donor})
    target_precompile_headers(${target} REUSE_FROM ${donor})
    target_compile_options(${target} PRIVATE ${SLMD_PCH_GCC12_WARNINGS})  # C++-only targets
  endif()
endfunction()

# The daemon (also in the Debian package build, which has no tests): its layer libraries share one PCH.
slmd_pch(slmd_modem ${SLMD_PCH_STD} ${SLMD_PCH_ASIO} <fmt/format.h>)
foreach(layer slmd_sys slmd_net slmd_serial slmd_at slmd_flows slmd_api slmd_config)
  slmd_pch_reuse(${layer} slmd_modem)
endforeach()
# The simulator (shipped in the slmsim package) and its tests.
slmd_pch(slmsim_core ${SLMD_PCH_STD} ${SLMD_PCH_ASIO})

if(SLMD_BUILD_TESTS)
  # Unit tests: one executable per *_test.cpp, all with the same flags (slmd_core + GoogleTest), so they share
  # one PCH; the first of them builds it.
  get_property(test_dirs DIRECTORY ${PROJECT_SOURCE_DIR}/tests PROPERTY SUBDIRECTORIES)
  set(unit_tests "")
  if(${PROJECT_SOURCE_DIR}/tests/unit IN_LIST test_dirs)
    get_property(unit_tests DIRECTORY ${PROJECT_SOURCE_DIR}/tests/unit PROPERTY BUILDSYSTEM_TARGETS)
  endif()
  list(FILTER unit_tests INCLUDE REGEX "_test$")
  if(unit_tests)
    list(GET unit_tests 0 unit_donor)
    slmd_pch(${unit_donor} ${SLMD_PCH_STD} ${SLMD_PCH_ASIO} <fmt/format.h> ${SLMD_PCH_GTEST} <gmock/gmock.h>)
    foreach(test IN LISTS unit_tests)
      if(NOT test STREQUAL unit_donor)
        slmd_pch_reuse(${test} ${unit_donor})
      endif()
    endforeach()
  endif()

  slmd_pch(slmsim_tests ${SLMD_PCH_STD} ${SLMD_PCH_ASIO} ${SLMD_PCH_GTEST})

  # Process-level integration tests: GoogleTest and the standard library; the biggest one builds the PCH.
  slmd_pch(slmd_integration_tests ${SLMD_PCH_STD} ${SLMD_PCH_GTEST})
  foreach(test slmd_admin_tests slmd_credential_tests slmd_reliability_tests slmd_tls_tests)
    slmd_pch_reuse(${test} slmd_integration_tests)
  endforeach()
endif()
