# The browser end-to-end tests that need network namespaces (root); included from
# tests/e2e/CMakeLists.txt. Default preset only: Chromium and the daemons under ASan would
# measure nothing the default build does not, at many times the run time.
if(NOT AR_SANITIZE AND TARGET anteroom)
  set(_ar_e2e ${CMAKE_CURRENT_LIST_DIR}/..)
  foreach(name firewall443)
    add_test(NAME e2e_${name}
             COMMAND bash ${_ar_e2e}/lib/netns.sh ${PROJECT_BINARY_DIR} 150
                     ${_ar_e2e}/${name}.test.mjs)
    set_tests_properties(e2e_${name} PROPERTIES LABELS e2e RESOURCE_LOCK ports TIMEOUT 180
                         SKIP_RETURN_CODE 77)
  endforeach()
endif()
