#include "haco/fault_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace haco {

void fault_point(const char* name) {
  static const char* const wanted = std::getenv("HACO_FAULT_POINT");
  if (!wanted || std::strcmp(wanted, name) != 0) return;
  const std::string line =
      "haco-fleet: fault point " + std::string(name) + " (pid " + std::to_string(::getpid()) + ")\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  ::raise(SIGSTOP);
}

}  // namespace haco
