# Installs this build into a scratch prefix, then configures and builds the consumer project
# against it, runs its program and the echo example pair it built (loopback.sh).
add_test(NAME consumer.find_package
  COMMAND ${CMAKE_COMMAND}
    -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DBUILD_DIR=${PROJECT_BINARY_DIR}
    -DWORK_DIR=${PROJECT_BINARY_DIR}/consumer-test
    -DCXX_FLAGS=${CMAKE_CXX_FLAGS} -DLINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_consumer.cmake)
set_tests_properties(consumer.find_package PROPERTIES TIMEOUT 300 LABELS consumer)
