# sd2_library(NAME name SOURCES ... DEPS ...) defines sd2_<name> with alias sd2::<name>.
# sd2_test(NAME name SOURCES ... DEPS ... [LABELS ...]) defines a GoogleTest binary registered
# with gtest_discover_tests so that CTest reports every TEST.
include(GoogleTest)

function(sd2_library)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(sd2_${A_NAME} STATIC ${A_SOURCES})
  add_library(sd2::${A_NAME} ALIAS sd2_${A_NAME})
  target_include_directories(sd2_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(sd2_${A_NAME} PUBLIC ${A_PUBLIC_DEPS} PRIVATE ${A_DEPS})
endfunction()

function(sd2_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_definitions(${A_NAME} PRIVATE
    SD2_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SD2_BINARY_DIR="${PROJECT_BINARY_DIR}"
    SD2_PYTHON="${SD2_PYTHON}")
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  gtest_discover_tests(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
                       DISCOVERY_TIMEOUT 60)
endfunction()
