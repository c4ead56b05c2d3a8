// The pseudo-terminal of `exec -t`: the pair is made on the host side; the
// command gets the slave as its controlling terminal, exec relays the master
// to its own terminal, put in raw mode for as long as it relays.
#pragma once

#include <termios.h>

#include "haco/unique_fd.hpp"

namespace haco::runtime {

struct PseudoTerminal {
  UniqueFd master;  // close-on-exec
  UniqueFd slave;   // close-on-exec, not yet anyone's controlling terminal
};

// A new pair from /dev/ptmx, with the window size of `size_from` when that
// is a terminal.
PseudoTerminal open_pseudo_terminal(int size_from);

// The window size of terminal `from` given to terminal `to` (the kernel then
// sends SIGWINCH to the foreground group of `to`). Nothing when `from` is not
// a terminal.
void copy_window_size(int from, int to);

// `fd`'s terminal in raw mode (cfmakeraw) while the object lives: keys reach
// the command as they are typed, Ctrl-C included. The old settings come back
// on destruction, on every path out.
class RawMode {
 public:
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

}  // namespace haco::runtime
