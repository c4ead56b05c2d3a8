#include "haco/fault_point.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace haco {

void fault_point(const char* name) {
  const char* wanted = std::getenv("HACO_FAULT_POINT");
  if (!wanted || std::strcmp(wanted, name) != 0) return;
  const std::string pid = std::to_string(::getpid());
  if (const char* once = std::getenv("HACO_FAULT_ONCE"); once && *once) {
    int fd = ::open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return;  // another process stopped here first
    (void)!::write(fd, pid.data(), pid.size());
    ::close(fd);
  }
  const std::string line = "haco-fleet: fault point " + std::string(name) + " (pid " + pid + ")\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  ::raise(SIGSTOP);
}

}  // namespace haco
