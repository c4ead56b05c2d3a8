// `up --foreground` once its fleet is up: the caller stays until it is told
// to stop or the fleet's supervisor ends.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops.hpp"
#include "haco/pidfd.hpp"
#include "haco/systemd_unit.hpp"
#include "haco/unique_fd.hpp"

namespace haco::ops {
namespace {

bool supervisor_gone(const state::FleetPaths& paths, Sink& sink) {
  if (!std::filesystem::exists(paths.state_file())) {
    sink.message(fmt::format("fleet {}: taken down", paths.fleet));
    return true;
  }
  sink.error(fmt::format("the supervisor of fleet '{}' exited (see {})", paths.fleet,
                           paths.supervisor_log()));
  return false;
}

}  // namespace

bool stay_in_foreground(const UpResult& result, const std::atomic<bool>& interrupted, SupervisorClient& supervisor,
                        Sink& sink, bool purge) {
  const state::FleetPaths& paths = *result.paths;
  const state::ProcessIdentity& who = result.supervisor;
  systemd::notify("READY=1\nSTATUS=" + result.status_line());
  UniqueFd pidfd(::pidfd_open(who.pid, 0));
  check_sys(pidfd.get(), "pidfd_open", "supervisor");
  if (!state::is_alive(who)) return supervisor_gone(paths, sink);
  sink.message(fmt::format("fleet {}: {}; in the foreground until SIGTERM or Ctrl-C", paths.fleet,
                           result.status_line()));
  for (;;) {
    pollfd watch{pidfd.get(), POLLIN, 0};
    int n = ::poll(&watch, 1, 200);
    if (n < 0 && errno != EINTR) throw Error::from_errno("poll", "supervisor pidfd", errno);
    if (interrupted.load()) break;
    if (n > 0) {
      ::waitpid(who.pid, nullptr, WNOHANG);
      return supervisor_gone(paths, sink);
    }
  }
  systemd::notify("STOPPING=1\nSTATUS=stopping the fleet");
  sink.message(fmt::format("fleet {}: stopping (down{})", paths.fleet, purge ? " --purge" : " without --purge"));
  supervisor::TeardownOptions teardown;
  teardown.purge = purge;
  teardown.progress = [&](std::string_view step) { sink.message(std::string(step)); };
  supervisor.shutdown(paths, teardown);
  ::waitpid(who.pid, nullptr, 0);
  return true;
}

}  // namespace haco::ops
