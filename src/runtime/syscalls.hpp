// The system calls glibc 2.36 has no wrapper for.
#pragma once

#include <linux/openat2.h>
#include <sys/types.h>

#include <cstdint>

namespace haco::sys {

// struct clone_args of <linux/sched.h> up to cgroup (CLONE_ARGS_SIZE_VER2).
struct CloneArgs {
  std::uint64_t flags = 0;
  std::uint64_t pidfd = 0;
  std::uint64_t child_tid = 0;
  std::uint64_t parent_tid = 0;
  std::uint64_t exit_signal = 0;
  std::uint64_t stack = 0;
  std::uint64_t stack_size = 0;
  std::uint64_t tls = 0;
  std::uint64_t set_tid = 0;
  std::uint64_t set_tid_size = 0;
  std::uint64_t cgroup = 0;
};

// CLONE_INTO_CGROUP of <linux/sched.h>, which cannot be included beside <sched.h>.
inline constexpr std::uint64_t kCloneIntoCgroup = 0x200000000ULL;

// Returns 0 in the child, the child's pid in the parent, -1 with errno.
long clone3(CloneArgs& args);
int openat2(int dirfd, const char* path, const open_how& how);
int pivot_root(const char* new_root, const char* put_old);

}  // namespace haco::sys
