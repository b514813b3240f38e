# Browser end-to-end tests of the e2enet work, included from tests/CMakeLists.txt. Default
# preset only: Chromium and the daemons under ASan or the fuzz build would measure nothing the
# default build does not, at many times the run time (as tests/e2e/CMakeLists.txt).
if(AR_SANITIZE OR AR_FUZZ OR NOT TARGET anteroom)
  return()
endif()
set(_ar_e2e ${CMAKE_CURRENT_LIST_DIR}/..)
# Needing root and network namespaces (lib/netns.sh skips, 77, when they are not there).
foreach(name firewall443)
  add_test(NAME e2e_${name}
           COMMAND bash ${_ar_e2e}/lib/netns.sh ${PROJECT_BINARY_DIR} 150
                   ${_ar_e2e}/${name}.test.mjs)
  set_tests_properties(e2e_${name} PROPERTIES LABELS e2e RESOURCE_LOCK ports TIMEOUT 180
                       SKIP_RETURN_CODE 77)
endforeach()
# On 127.0.0.1, through the shared runner (run.sh skips, 77, without playwright-core).
foreach(name relay reload fourway)
  if(EXISTS ${_ar_e2e}/${name}.test.mjs)
    add_test(NAME e2e_${name} COMMAND bash ${_ar_e2e}/run.sh ${PROJECT_BINARY_DIR} ${name}.test.mjs)
    set_tests_properties(e2e_${name} PROPERTIES LABELS e2e RESOURCE_LOCK ports TIMEOUT 180
                         SKIP_RETURN_CODE 77)
  endif()
endforeach()
