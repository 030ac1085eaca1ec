# Owns: the check that an installed libslmsock is usable from elsewhere: installs the build into a scratch
# prefix, moves the tree (relocatability), then builds and runs a small consumer against it twice — once with
# find_package(slmsock) (shared and static targets), once with pkg-config.
# Inputs: -DBUILD_DIR -DSCRATCH -DSOURCE (the consumer project) -DGENERATOR -DCC -DCXX -DFLAGS (compile+link)
file(REMOVE_RECURSE "${SCRATCH}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${SCRATCH}/prefix"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
file(RENAME "${SCRATCH}/prefix" "${SCRATCH}/moved")
set(prefix "${SCRATCH}/moved")

foreach(mode cmake pkgconfig)
  set(use_pkgconfig OFF)
  if(mode STREQUAL "pkgconfig")
    set(use_pkgconfig ON)
  endif()
  set(link_with_cxx OFF)
  if(FLAGS)
    set(link_with_cxx ON)
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S "${SOURCE}" -B "${SCRATCH}/build-${mode}" -G "${GENERATOR}"
            -DCMAKE_C_COMPILER=${CC} -DCMAKE_CXX_COMPILER=${CXX}
            -DCMAKE_PREFIX_PATH=${prefix} -DUSE_PKGCONFIG=${use_pkgconfig} -DLINK_WITH_CXX=${link_with_cxx}
            "-DCMAKE_C_FLAGS=${FLAGS}" "-DCMAKE_CXX_FLAGS=${FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${FLAGS}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configuring the consumer (${mode}) failed:\n${out}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build "${SCRATCH}/build-${mode}" RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the consumer (${mode}) failed:\n${out}")
  endif()
  set(programs consumer_shared)
  if(mode STREQUAL "cmake")
    list(APPEND programs consumer_static)
  endif()
  foreach(program IN LISTS programs)
    # The consumer prints slmsock_socket_path() and the error for an absent slmd.
    execute_process(COMMAND ${CMAKE_COMMAND} -E env SLMSOCK_SOCKET=${SCRATCH}/absent.sock
                            "${SCRATCH}/build-${mode}/${program}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "absent.sock: Network is down")
      message(FATAL_ERROR "${program} (${mode}) failed: ${rc} '${out}'")
    endif()
  endforeach()
endforeach()
file(REMOVE_RECURSE "${SCRATCH}")
message(STATUS "installed libslmsock package OK (find_package and pkg-config, relocated)")
