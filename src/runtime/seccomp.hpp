// Seccomp filters of the init: compiled with libseccomp by the parent before
// clone (once per distinct policy in a process), installed by the child as
// the last step before exec (handshake step 3), so the child never calls
// into libseccomp.
#pragma once

#include <linux/filter.h>

#include <memory>
#include <vector>

#include "haco/spec.hpp"

namespace haco::runtime {

// A classic BPF program as seccomp(2) takes it.
struct SeccompProgram {
  std::vector<sock_filter> code;
};

using SeccompPrograms = std::vector<std::shared_ptr<const SeccompProgram>>;

// The default filter (docs/security.md, "Seccomp") for a container whose
// bounding set is `capabilities`: the calls of seccomp_policy.cpp fail with
// EPERM (clone3: ENOSYS); CAP_SYS_ADMIN relaxes the mount and namespace
// rules. Covers the native ABI and the 32-bit ones the kernel runs beside it
// (x86 and x32 on x86-64, arm on aarch64); calls of any other ABI kill the
// process.
SeccompProgram compile_default_filter(CapabilitySet capabilities);

// config.seccomp.filter: `kill` kills the process, `trap` sends SIGSYS.
// Throws haco::Error for a system call libseccomp does not know or rules it
// refuses.
SeccompProgram compile_definition_filter(const SeccompFilter& filter);

// What the child installs for `c`, in order: the default filter unless the
// definition turned it off, then the definition's own. The kernel runs every
// installed filter and the strictest answer wins, so a definition's filter
// can only narrow the default. Compiled programs are kept for the life of
// the process, keyed by what they depend on.
SeccompPrograms seccomp_programs(const ContainerSpec& c);

// Child: seccomp(SECCOMP_SET_MODE_FILTER) for each program, in order. The
// kernel requires no_new_privs or CAP_SYS_ADMIN in the caller's effective
// set. The filters stay with the process across exec.
void install_seccomp(const SeccompPrograms& programs);

// Whether the child must keep CAP_SYS_ADMIN effective until install_seccomp.
bool seccomp_needs_sys_admin(const ContainerSpec& c, const SeccompPrograms& programs);

}  // namespace haco::runtime
