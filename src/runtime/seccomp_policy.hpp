// The default seccomp filter as data: which calls it denies, on which
// arguments, with which errno, and which of them a container that keeps
// CAP_SYS_ADMIN may make. docs/security.md ("Seccomp") explains each group.
#pragma once

#include <span>
#include <string_view>

namespace haco::runtime {

enum class ArgumentTest {
  any,                     // every call
  clone_namespace_flags,   // clone whose flags (argument 0) hold a CLONE_NEW* flag
  unshare_namespace_flags, // unshare whose flags hold a CLONE_NEW* flag (CLONE_NEWTIME too)
  unusual_personality,     // personality other than PER_LINUX, PER_LINUX32, their
                           // UNAME26 forms, and the query 0xffffffff
};

struct DeniedCall {
  std::string_view syscall;  // libseccomp's name for it
  ArgumentTest test;
  int error;                  // the errno the call fails with
  bool relaxed_by_sys_admin;  // allowed when the bounding set keeps CAP_SYS_ADMIN
};

std::span<const DeniedCall> default_denied_calls();

}  // namespace haco::runtime
