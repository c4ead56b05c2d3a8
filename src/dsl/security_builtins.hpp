// The C functions behind config.capabilities and config.seccomp in the
// prelude: capability and system call names are checked while the
// definition runs, so that an error names its line.
#pragma once

#include <mruby.h>

namespace haco::dsl {

// Haconiwa.__capability_name(text) -> "sys_admin" or nil ("CAP_SYS_ADMIN",
//   "cap_sys_admin", "sys_admin" and the kernel's number "21" are accepted)
// Haconiwa.__default_capabilities, Haconiwa.__all_capabilities -> [names]
// Haconiwa.__syscall_name(name or number) -> libseccomp's name or nil
void define_security_builtins(mrb_state* mrb, RClass* haconiwa);

}  // namespace haco::dsl
