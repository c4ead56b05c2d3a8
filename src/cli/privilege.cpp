#include "cli/privilege.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace haco::cli {

bool running_as_root(std::string_view verb) {
  if (::geteuid() == 0) return true;
  std::fprintf(stderr, "haco-fleet %.*s: must run as root (containers, cgroups and mounts need it)\n",
               static_cast<int>(verb.size()), verb.data());
  return false;
}

bool running_as_root_for_logs(std::string_view verb) {
  if (::geteuid() == 0) return true;
  std::fprintf(stderr, "haco-fleet %.*s: must run as root (instance logs are readable by root only)\n",
               static_cast<int>(verb.size()), verb.data());
  return false;
}

bool can_read_state_root(std::string_view verb, const std::string& state_root) {
  if (::geteuid() == 0) return true;
  // A missing root holds no fleet, which anyone may be told.
  if (::access(state_root.c_str(), R_OK | X_OK) == 0 || errno == ENOENT) return true;
  std::fprintf(stderr, "haco-fleet %.*s: must run as root to read the state root %s (%s)\n",
               static_cast<int>(verb.size()), verb.data(), state_root.c_str(), std::strerror(errno));
  return false;
}

}  // namespace haco::cli
