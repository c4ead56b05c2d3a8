# Common settings for every target built from our own sources.
function(haco_target_flags target)
  target_compile_options(${target} PRIVATE ${HACO_WARNINGS})
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(${target} PRIVATE HACO_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    HACO_VERSION="${PROJECT_VERSION}")
endfunction()

# haco_module(NAME SOURCES... DEPS ...): a static library haco_NAME.
function(haco_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(haco_${name} STATIC ${M_SOURCES})
  haco_target_flags(haco_${name})
  target_include_directories(haco_${name} PUBLIC ${CMAKE_SOURCE_DIR}/include)
  target_include_directories(haco_${name} SYSTEM PUBLIC ${MRUBY_INCLUDE_DIR} ${CLI11_INCLUDE_DIR} ${Boost_INCLUDE_DIRS})
  target_link_libraries(haco_${name} PUBLIC ${M_DEPS})
endfunction()

# haco_test(NAME SOURCES... DEPS ... LABELS ...): a GoogleTest program whose
# tests ctest discovers. Integration tests run serially (they start real
# containers and share the kernel's state).
function(haco_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${CMAKE_SOURCE_DIR}/tests/test_support.cpp)
  haco_target_flags(${name})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_compile_definitions(${name} PRIVATE
    HACO_BUILD_DIR="${CMAKE_BINARY_DIR}" HACO_BINARY="$<TARGET_FILE:haco-fleet>")
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main)
  add_dependencies(${name} haco-fleet)
  set(props LABELS "${T_LABELS}")
  if("integration" IN_LIST T_LABELS)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  # Tests that start containers are followed by the leak check
  # (tests/CMakeLists.txt), whichever of them ctest runs.
  if("integration" IN_LIST T_LABELS OR "vm" IN_LIST T_LABELS)
    list(APPEND props FIXTURES_REQUIRED haco_leak_check)
  endif()
  gtest_discover_tests(${name} PROPERTIES ${props} DISCOVERY_TIMEOUT 60)
endfunction()
