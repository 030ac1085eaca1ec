# The shipped systemd files are valid for the systemd on this machine: `systemd-analyze verify` is clean on
# slmd.service/slmd.socket, `systemd-analyze security --offline=yes` rates slmd.service's exposure at most 2.0,
# io_uring's system calls pass the unit's SystemCallFilter=, and sysusers.d/tmpfiles.d apply to a scratch root
# (user slmd, group slm, /run/slmd 0750 slmd:slm). Without systemd-analyze it prints SKIPPED (a skip for ctest).
# Inputs: -DUNIT_DIR=<build>/systemd -DSOURCE_DIR=<source>/systemd -DSLMD_BIN=... -DSCRATCH=...
find_program(ANALYZE systemd-analyze)
if(NOT ANALYZE)
  message("SKIPPED: systemd-analyze is not installed (package systemd)")
  return()
endif()
file(REMOVE_RECURSE "${SCRATCH}")
file(MAKE_DIRECTORY "${SCRATCH}/units")

# verify checks that ExecStart= exists: point it at the binary just built, the rest of the unit unchanged.
file(READ "${UNIT_DIR}/slmd.service" unit)
string(REGEX REPLACE "\nExecStart=[^\n]*" "\nExecStart=${SLMD_BIN}" unit "${unit}")
file(WRITE "${SCRATCH}/units/slmd.service" "${unit}")
file(COPY "${UNIT_DIR}/slmd.socket" DESTINATION "${SCRATCH}/units")
# --man=no: Documentation= is not a man page; --generators=no: the host's generators are not under test.
execute_process(COMMAND ${ANALYZE} verify --man=no --generators=no slmd.service slmd.socket
                WORKING_DIRECTORY "${SCRATCH}/units" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
  message(FATAL_ERROR "systemd-analyze verify is not clean (${rc}):\n${out}${err}")
endif()
message(STATUS "systemd-analyze verify: clean")

# Exposure: systemd 252 rates a unit file without loading it with --offline=yes.
execute_process(COMMAND ${ANALYZE} security --offline=yes --no-pager slmd.service
                WORKING_DIRECTORY "${SCRATCH}/units" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT "${out}" MATCHES "Overall exposure level for slmd.service: ([0-9]+)\\.([0-9])")
  if("${err}" MATCHES "unrecognized option|Unknown option|--offline")
    message("SKIPPED: systemd-analyze security --offline=yes is not supported here (systemd < 250): ${err}")
    return()
  endif()
  message(FATAL_ERROR "systemd-analyze security gave no overall exposure (${rc}):\n${out}${err}")
endif()
math(EXPR tenths "${CMAKE_MATCH_1} * 10 + ${CMAKE_MATCH_2}")
if(tenths GREATER 20)
  message(FATAL_ERROR "slmd.service exposure ${CMAKE_MATCH_1}.${CMAKE_MATCH_2} > 2.0:\n${out}")
endif()
message(STATUS "systemd-analyze security: exposure ${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")

# io_uring (Boost.Asio's backend): allowed either by @system-service or by name, and denied by neither group.
execute_process(COMMAND ${ANALYZE} syscall-filter --no-pager @system-service OUTPUT_VARIABLE allowed)
execute_process(COMMAND ${ANALYZE} syscall-filter --no-pager @privileged @resources OUTPUT_VARIABLE denied)
foreach(call io_uring_setup io_uring_enter io_uring_register)
  if(NOT allowed MATCHES "[ \n]${call}\n" AND NOT unit MATCHES "\nSystemCallFilter=[^~\n]*${call}")
    message(FATAL_ERROR "${call} is not allowed by slmd.service's SystemCallFilter=")
  endif()
  if(denied MATCHES "[ \n]${call}\n")
    message(FATAL_ERROR "${call} is in @privileged or @resources, which slmd.service denies")
  endif()
endforeach()

# sysusers.d then tmpfiles.d against a scratch root: the user and groups exist, /run/slmd has its owner.
find_program(SYSUSERS systemd-sysusers)
find_program(TMPFILES systemd-tmpfiles)
if(SYSUSERS AND TMPFILES)
  file(MAKE_DIRECTORY "${SCRATCH}/root/etc")
  execute_process(COMMAND ${SYSUSERS} --root=${SCRATCH}/root ${SOURCE_DIR}/sysusers.d/slmd.conf
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "systemd-sysusers failed (${rc}): ${err}")
  endif()
  file(READ "${SCRATCH}/root/etc/passwd" passwd)
  file(READ "${SCRATCH}/root/etc/group" group)
  if(NOT passwd MATCHES "(^|\n)slmd:x:([0-9]+):" OR NOT group MATCHES "(^|\n)slm:x:([0-9]+):slmd\n"
     OR NOT group MATCHES "(^|\n)dialout:x:[0-9]+:slmd\n")
    message(FATAL_ERROR "sysusers did not create slmd in slm and dialout:\n${passwd}${group}")
  endif()
  string(REGEX MATCH "(^|\n)slmd:x:([0-9]+):" _ "${passwd}")
  set(slmd_uid ${CMAKE_MATCH_2})
  string(REGEX MATCH "(^|\n)slm:x:([0-9]+):" _ "${group}")
  set(slm_gid ${CMAKE_MATCH_2})
  execute_process(COMMAND ${TMPFILES} --root=${SCRATCH}/root --create ${SOURCE_DIR}/tmpfiles.d/slmd.conf
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  execute_process(COMMAND stat -c "%a %u %g" "${SCRATCH}/root/run/slmd" OUTPUT_VARIABLE mode
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR NOT mode STREQUAL "750 ${slmd_uid} ${slm_gid}")
    message(FATAL_ERROR "tmpfiles: /run/slmd is '${mode}', want '750 ${slmd_uid} ${slm_gid}' (${rc}: ${err})")
  endif()
  message(STATUS "sysusers.d + tmpfiles.d: slmd ${slmd_uid}, slm ${slm_gid}, /run/slmd ${mode}")
else()
  message(STATUS "systemd-sysusers/systemd-tmpfiles not installed: sysusers.d and tmpfiles.d not applied")
endif()
file(REMOVE_RECURSE "${SCRATCH}")
message(STATUS "systemd units OK")
