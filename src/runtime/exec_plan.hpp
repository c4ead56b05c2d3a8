// What the last steps before exec share, for the container's init
// (child.cpp) and for a command entered into a running container
// (enter.cpp): the signal state a command starts with and the execve calls
// of a command looked up in the container's PATH.
#pragma once

#include <string>
#include <vector>

namespace haco::runtime {

// The caller may ignore or block signals (a supervisor ignores SIGHUP,
// `exec` blocks the ones it forwards); a command starts with the defaults
// and an empty mask.
void reset_signals();

// The execve calls of a command, prepared before the seccomp filter is
// installed so that nothing between the filter and exec allocates. A name
// without '/' is looked up in the PATH of `env`, as a shell would.
class ExecPlan {
 public:
  ExecPlan(const std::vector<std::string>& command, std::vector<std::string> env);

  // argv_ and envp_ point into the strings held here.
  ExecPlan(const ExecPlan&) = delete;
  ExecPlan& operator=(const ExecPlan&) = delete;

  // Returns only on failure, with the errno to report.
  int exec() const;

 private:
  bool direct_ = false;
  std::vector<std::string> command_;
  std::vector<std::string> env_;
  std::vector<char*> argv_, envp_;
  std::vector<std::string> candidates_;
};

}  // namespace haco::runtime
