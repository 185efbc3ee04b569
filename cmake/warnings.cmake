# Applied to every netkit target through netkit_warnings().
function(netkit_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow=local -Wno-missing-field-initializers)
  if(NETKIT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
