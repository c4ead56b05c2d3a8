#include "runtime/syscalls.hpp"

#include <sys/syscall.h>
#include <unistd.h>

namespace haco::sys {

long clone3(CloneArgs& args) { return ::syscall(SYS_clone3, &args, sizeof args); }

int openat2(int dirfd, const char* path, const open_how& how) {
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

int pivot_root(const char* new_root, const char* put_old) {
  return static_cast<int>(::syscall(SYS_pivot_root, new_root, put_old));
}

}  // namespace haco::sys
