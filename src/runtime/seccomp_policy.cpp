#include "runtime/seccomp_policy.hpp"

#include <array>
#include <cerrno>

namespace haco::runtime {
namespace {

using enum ArgumentTest;

// Groups in the order of docs/security.md. The mount and namespace groups
// are relaxed by CAP_SYS_ADMIN, as in the mainstream engines' profiles; the
// others stay denied whatever the capabilities (turning the default filter
// off is the way to allow them).
constexpr std::array kDeniedCalls{
    // The kernel keyring is not namespaced.
    DeniedCall{"keyctl", any, EPERM, false},
    DeniedCall{"add_key", any, EPERM, false},
    DeniedCall{"request_key", any, EPERM, false},
    // Kernel programs, performance counters, userfaultfd: large attack
    // surface, used by kernel exploits to widen races.
    DeniedCall{"bpf", any, EPERM, false},
    DeniedCall{"perf_event_open", any, EPERM, false},
    DeniedCall{"userfaultfd", any, EPERM, false},
    // Replacing or extending the kernel.
    DeniedCall{"kexec_load", any, EPERM, false},
    DeniedCall{"kexec_file_load", any, EPERM, false},
    DeniedCall{"init_module", any, EPERM, false},
    DeniedCall{"finit_module", any, EPERM, false},
    DeniedCall{"delete_module", any, EPERM, false},
    // File handles open any file of a filesystem, past the container's root.
    DeniedCall{"open_by_handle_at", any, EPERM, false},
    DeniedCall{"name_to_handle_at", any, EPERM, false},
    // Mounts.
    DeniedCall{"mount", any, EPERM, true},
    DeniedCall{"umount", any, EPERM, true},
    DeniedCall{"umount2", any, EPERM, true},
    DeniedCall{"pivot_root", any, EPERM, true},
    DeniedCall{"move_mount", any, EPERM, true},
    DeniedCall{"fsopen", any, EPERM, true},
    DeniedCall{"fsconfig", any, EPERM, true},
    DeniedCall{"fsmount", any, EPERM, true},
    DeniedCall{"fspick", any, EPERM, true},
    DeniedCall{"open_tree", any, EPERM, true},
    DeniedCall{"mount_setattr", any, EPERM, true},
    // New namespaces: a nested user namespace gives its creator every
    // capability over it, the usual first step of a kernel exploit. clone3
    // passes its flags in memory, which a filter cannot read: it fails with
    // ENOSYS, and the C library falls back to clone.
    DeniedCall{"unshare", unshare_namespace_flags, EPERM, true},
    DeniedCall{"clone", clone_namespace_flags, EPERM, true},
    DeniedCall{"clone3", any, ENOSYS, true},
    DeniedCall{"setns", any, EPERM, true},
    // Swap, power, process accounting, quotas, I/O ports.
    DeniedCall{"swapon", any, EPERM, false},
    DeniedCall{"swapoff", any, EPERM, false},
    DeniedCall{"reboot", any, EPERM, false},
    DeniedCall{"acct", any, EPERM, false},
    DeniedCall{"quotactl", any, EPERM, false},
    DeniedCall{"quotactl_fd", any, EPERM, false},
    DeniedCall{"iopl", any, EPERM, false},
    DeniedCall{"ioperm", any, EPERM, false},
    // The host's clock (stime and clock_settime64 exist for 32-bit programs).
    DeniedCall{"settimeofday", any, EPERM, false},
    DeniedCall{"stime", any, EPERM, false},
    DeniedCall{"clock_settime", any, EPERM, false},
    DeniedCall{"clock_settime64", any, EPERM, false},
    DeniedCall{"adjtimex", any, EPERM, false},
    DeniedCall{"clock_adjtime", any, EPERM, false},
    DeniedCall{"clock_adjtime64", any, EPERM, false},
    // The kernel's log.
    DeniedCall{"syslog", any, EPERM, false},
    // Execution domains other than Linux's, and flags such as
    // ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC that weaken the address space.
    DeniedCall{"personality", unusual_personality, EPERM, false},
};

}  // namespace

std::span<const DeniedCall> default_denied_calls() { return kDeniedCalls; }

}  // namespace haco::runtime
