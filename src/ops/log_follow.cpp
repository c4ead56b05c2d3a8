// `logs -f`: one poll loop over an inotify descriptor and the stop
// descriptor. The fleet's log directory is watched for its files' changes
// (new bytes, a log created, a log renamed to <log>.1), the fleet's state
// directory for fleet.json being replaced (instances added) or removed (the
// fleet taken down). No timer: the loop sleeps until the kernel says
// something changed.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "ops/log_files.hpp"

namespace haco::ops::logfiles {
namespace {

constexpr std::string_view kLogSuffix = ".log";
constexpr std::uint32_t kLogDirEvents =
    IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr std::uint32_t kStateDirEvents =
    IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

class Follower {
 public:
  Follower(const state::FleetPaths& paths, std::vector<FollowedLog> logs, bool all_instances,
           const std::map<std::string, LogDirEntry>& at_start, int stop_fd, LogSink& sink)
      : paths_(paths),
        logs_(std::move(logs)),
        all_instances_(all_instances),
        at_start_(at_start),
        stop_fd_(stop_fd),
        sink_(sink) {
    for (std::size_t i = 0; i < logs_.size(); ++i) by_file_[base_name(logs_[i].path)] = i;
  }

  LogsResult run() {
    inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    check_sys(inotify_.get(), "inotify_init1");
    state_watch_ = ::inotify_add_watch(inotify_.get(), paths_.dir().c_str(), kStateDirEvents);
    if (state_watch_ < 0) {
      if (errno == ENOENT) return gone();
      throw Error::from_errno("inotify_add_watch", paths_.dir(), errno);
    }
    watch_log_dir();
    // What changed between reading and watching, and instances recorded
    // meanwhile.
    if (!reload_state()) return gone();
    pump_all();
    sink_.flush();
    for (;;) {
      pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      const int n = ::poll(fds, stop_fd_ >= 0 ? 2 : 1, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error::from_errno("poll", "inotify of " + paths_.log_dir(), errno);
      }
      if (stop_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
        pump_all();
        finish_partials();
        return {LogsResult::End::stopped};
      }
      if (!(fds[0].revents & POLLIN)) continue;
      if (!handle_events()) return gone();
      sink_.flush();
    }
  }

 private:
  // True when the watch is new: what its files hold was not watched.
  bool watch_log_dir() {
    if (log_watch_ >= 0) return false;
    log_watch_ = ::inotify_add_watch(inotify_.get(), paths_.log_dir().c_str(), kLogDirEvents);
    // A fleet whose instances have not started yet may have no log
    // directory: it is watched once the state changes.
    if (log_watch_ < 0 && errno != ENOENT)
      throw Error::from_errno("inotify_add_watch", paths_.log_dir(), errno);
    return log_watch_ >= 0;
  }

  // Reads the events waiting; false once the fleet's state is gone.
  bool handle_events() {
    alignas(inotify_event) char buffer[64 * 1024];
    std::set<std::size_t> touched;
    bool state_changed = false, everything = false;
    for (;;) {
      ssize_t n = ::read(inotify_.get(), buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) throw Error::from_errno("read", "inotify of " + paths_.log_dir(), n < 0 ? errno : EIO);
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        if (event->mask & IN_Q_OVERFLOW) {
          everything = state_changed = true;
          continue;
        }
        if (event->wd == state_watch_) {
          if ((event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) ||
              (event->len > 0 && std::string_view(event->name) == "fleet.json"))
            state_changed = true;
          continue;
        }
        if (event->wd != log_watch_) continue;
        if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
          // Removed (down --purge): the files open are read to their end.
          log_watch_ = -1;
          everything = true;
          continue;
        }
        if (event->len == 0) continue;
        if (auto known = by_file_.find(event->name); known != by_file_.end()) touched.insert(known->second);
      }
    }
    if (state_changed && !reload_state()) return false;
    if (everything)
      pump_all();
    else
      for (std::size_t i : touched) pump(logs_[i]);
    return true;
  }

  // The fleet's state again: instances it lists now are followed (all of
  // them, or none when PORTS chose some). False when it is gone.
  bool reload_state() {
    std::optional<state::FleetState> fleet;
    try {
      fleet = state::load_state(paths_);
    } catch (const Error&) {
      // Being replaced (it is written whole and renamed): the rename says so again.
      return true;
    }
    if (!fleet) return false;
    if (watch_log_dir()) pump_all();
    if (!all_instances_) return true;
    for (const auto& record : fleet->instances) {
      const std::string path = record.log_path.empty() ? paths_.instance_log(record.name()) : record.log_path;
      const std::string file = base_name(path);
      if (by_file_.count(file)) continue;
      FollowedLog log;
      log.instance = record.name();
      log.path = path;
      sink_.instance(log.instance);
      if (auto part = open_part(path)) {
        // A log there already when `logs` started (the name was used
        // before): from where it stood then; otherwise all of it.
        auto known = at_start_.find(file);
        if (known != at_start_.end() && known->second.dev == part->dev && known->second.ino == part->ino)
          log.offset = known->second.size;
        log.current = std::move(*part);
      }
      by_file_[file] = logs_.size();
      logs_.push_back(std::move(log));
      pump(logs_.back());
    }
    return true;
  }

  void pump_all() {
    for (auto& log : logs_) pump(log);
  }

  // New bytes of `log`; then, if its name now means another file (rotated,
  // or created), the rest of the old one and the new one from its start.
  void pump(FollowedLog& log) {
    with_context("following the log of " + log.instance, [&] {
      if (log.current.fd) read_new_bytes(log);
      for (;;) {
        struct stat st {};
        if (::lstat(log.path.c_str(), &st) != 0) {
          if (errno == ENOENT) return;  // between a rename and the new file
          throw Error::from_errno("lstat", log.path, errno);
        }
        if (log.current.fd && st.st_dev == log.current.dev && st.st_ino == log.current.ino) return;
        // The writer renamed the old file before it made this one: what it
        // wrote to the old one is all there now.
        if (log.current.fd) read_new_bytes(log);
        end_partial(log);
        auto part = open_part(log.path);
        if (!part) return;
        log.current = std::move(*part);
        log.offset = 0;
        read_new_bytes(log);
      }
    });
  }

  void read_new_bytes(FollowedLog& log) {
    log.offset = read_to_end(log.current.fd.get(), log.offset, log.path, [&](std::string_view chunk) {
      std::size_t from = 0;
      for (std::size_t newline; (newline = chunk.find('\n', from)) != std::string_view::npos; from = newline + 1) {
        if (log.partial.empty()) {
          sink_.line(log.instance, chunk.substr(from, newline - from));
        } else {
          log.partial.append(chunk.substr(from, newline - from));
          sink_.line(log.instance, log.partial);
          log.partial.clear();
        }
      }
      log.partial.append(chunk.substr(from));
    });
  }

  // A file that ended without a newline ended its last line.
  void end_partial(FollowedLog& log) {
    if (log.partial.empty()) return;
    sink_.line(log.instance, log.partial);
    log.partial.clear();
  }

  void finish_partials() {
    for (auto& log : logs_) end_partial(log);
    sink_.flush();
  }

  LogsResult gone() {
    // The instances' last words are in their logs before the state goes.
    pump_all();
    finish_partials();
    sink_.notice(fmt::format("fleet {} was taken down", paths_.fleet));
    return {LogsResult::End::fleet_gone};
  }

  const state::FleetPaths& paths_;
  std::vector<FollowedLog> logs_;
  bool all_instances_;
  const std::map<std::string, LogDirEntry>& at_start_;
  int stop_fd_;
  LogSink& sink_;
  UniqueFd inotify_;
  int state_watch_ = -1;
  int log_watch_ = -1;
  std::map<std::string, std::size_t> by_file_;  // "t-1.log" -> logs_
};

}  // namespace

std::map<std::string, LogDirEntry> snapshot_log_dir(const std::string& dir) {
  std::map<std::string, LogDirEntry> entries;
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return entries;
    throw Error::from_errno("open", dir, errno);
  }
  DIR* listing = ::fdopendir(fd.get());
  if (!listing) throw Error::from_errno("fdopendir", dir, errno);
  const int dir_fd = fd.release();
  while (const dirent* entry = ::readdir(listing)) {
    const std::string name = entry->d_name;
    if (name.size() <= kLogSuffix.size() || name.compare(name.size() - kLogSuffix.size(), kLogSuffix.size(), kLogSuffix))
      continue;
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    entries[name] = {st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size)};
  }
  ::closedir(listing);
  return entries;
}

LogsResult follow(const state::FleetPaths& paths, std::vector<FollowedLog> logs, bool all_instances,
                  const std::map<std::string, LogDirEntry>& at_start, int stop_fd, LogSink& sink) {
  return Follower(paths, std::move(logs), all_instances, at_start, stop_fd, sink).run();
}

}  // namespace haco::ops::logfiles
