# ar_unit_test(NAME SOURCES... LIBS ...): a cmocka test registered with CTest under the "unit" label.
function(ar_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# ar_fuzz_target(NAME SOURCE LIBS ...): under the fuzz preset a libFuzzer binary; otherwise a
# replay binary that runs every file of fuzz/corpus/NAME through the same entry point, so the
# corpus (seeds and committed crash reproducers) is checked on every build.
function(ar_fuzz_target name source)
  cmake_parse_arguments(F "" "" "LIBS" ${ARGN})
  if(AR_FUZZ)
    add_executable(fuzz_${name} ${source})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzz_${name} ${source} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.c)
  endif()
  target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS})
  if(NOT AR_FUZZ)
    add_test(NAME fuzz_replay_${name}
             COMMAND fuzz_${name} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${name})
    set_tests_properties(fuzz_replay_${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  endif()
endfunction()
