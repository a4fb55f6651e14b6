# Installs the build tree into a scratch prefix, then builds a small program
# against it twice: with find_package(dbpipe) and with pkg-config.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BIN} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
foreach(mode cmake pkgconfig)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/install/consumer -B ${WORK}/build-${mode}
                          -DCMAKE_PREFIX_PATH=${WORK}/prefix -DUSE=${mode}
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "configuring the consumer (${mode}) failed")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/build-${mode} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building the consumer (${mode}) failed")
  endif()
  execute_process(COMMAND ${WORK}/build-${mode}/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(rc OR NOT out MATCHES "dbpipe 0\\.1\\.0 coroutine=42")
    message(FATAL_ERROR "the consumer (${mode}) printed '${out}' and exited ${rc}")
  endif()
endforeach()
