#include "runtime/terminal.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "haco/error.hpp"

namespace haco::runtime {

PseudoTerminal open_pseudo_terminal(int size_from) {
  PseudoTerminal pty;
  pty.master.reset(static_cast<int>(
      check_sys(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), "open", "/dev/ptmx")));
  check_sys(::unlockpt(pty.master.get()), "unlockpt", "/dev/ptmx");
  // The slave through its master, not by a name looked up in /dev/pts.
  pty.slave.reset(static_cast<int>(
      check_sys(::ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC), "ioctl TIOCGPTPEER")));
  copy_window_size(size_from, pty.master.get());
  return pty;
}

void copy_window_size(int from, int to) {
  winsize size{};
  if (::ioctl(from, TIOCGWINSZ, &size) != 0) return;
  check_sys(::ioctl(to, TIOCSWINSZ, &size), "ioctl TIOCSWINSZ", "the pseudo-terminal");
}

RawMode::RawMode(int fd) : fd_(fd) {
  if (!::isatty(fd)) return;
  check_sys(::tcgetattr(fd, &saved_), "tcgetattr", "stdin");
  termios raw = saved_;
  ::cfmakeraw(&raw);
  check_sys(::tcsetattr(fd, TCSADRAIN, &raw), "tcsetattr", "stdin");
  active_ = true;
}

RawMode::~RawMode() {
  if (active_) ::tcsetattr(fd_, TCSADRAIN, &saved_);
}

}  // namespace haco::runtime
