// `haco-fleet exec`: which instance a command goes into, whether it can be
// entered, as whom and with which environment. Entering is
// runtime::enter_and_run (haco/enter.hpp) behind InstanceEntry, so that the
// decisions are unit-tested over a fake (tests/ops). docs/exec.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "haco/enter.hpp"
#include "haco/error.hpp"
#include "haco/state.hpp"

namespace haco::ops {

struct ExecRequest {
  std::string state_root;
  std::string data_root;
  std::string fleet;     // --name; empty: the only fleet (ops::choose_fleet)
  std::string instance;  // PORT or NAME (ops::find_instance)
  std::vector<std::string> command;
  std::vector<std::string> environment;  // -e KEY=VALUE, in order: a later one wins
  std::string workdir;                   // -w; empty: the container's
  std::optional<std::uint32_t> user;     // -u; nullopt: the container's root
  bool tty = false;                      // -t
  std::string term;                      // the caller's TERM, for a -t command that has none
};

// The instance cannot be entered because it does not run (stopped, exited,
// failed, starting, or its init is gone although its record says running).
// Exit status 1, like any haco::Error; a class of its own so that callers
// and tests can tell it from a failure on the way in.
class NotRunningError : public Error {
 public:
  using Error::Error;
};

// The kernel side of exec.
class InstanceEntry {
 public:
  virtual ~InstanceEntry() = default;
  // Whether `init` runs: same pid and start time, not a zombie.
  virtual bool alive(const state::ProcessIdentity& init) = 0;
  // A pidfd of `init`, checked against its start time after it was opened
  // (NotRunningError when it is gone), then runtime::enter_and_run.
  virtual runtime::CommandEnd enter(const state::ProcessIdentity& init, runtime::EnterRequest request) = 0;
};

// The real one.
std::unique_ptr<InstanceEntry> kernel_entry();

// -e's form: KEY=VALUE with a KEY that is not empty and holds no '='.
// InputError otherwise.
void check_environment_assignment(std::string_view assignment);

// The ids the command runs as, inside the container: root (0, 0) without
// `user`; with one, that uid and the gid of the same number, each of which
// the container's uid and gid maps must map (InputError naming the ranges
// otherwise). A container without a user namespace runs on host ids: any
// uid below 2^32-1 is taken as it is.
std::pair<uid_t, gid_t> exec_ids(const ContainerSpec& c, std::optional<std::uint32_t> user);

// What the command's environment is: the init's (runtime::init_environment),
// with each of `assignments` replacing the variable of its name or added at
// the end; with `tty`, TERM=`term` when the result has no TERM and `term` is
// not empty.
std::vector<std::string> exec_environment(const ContainerSpec& c, const std::vector<std::string>& assignments,
                                          bool tty, std::string_view term);

// exec's exit status for how the command ended: its exit code; 128+N when
// signal N killed it; 127 when it was not found, 126 when it could not be
// executed otherwise.
int exit_status(const runtime::CommandEnd& end);

// What exec decided: the instance and what to run there.
struct ExecPlan {
  std::string fleet;
  std::string instance;
  state::ProcessIdentity init;
  runtime::EnterRequest request;  // init_pidfd not yet set
};

// Chooses the instance (InputError: no such fleet, port or name) and checks
// that it runs (NotRunningError), then the ids, environment and workdir
// (InputError).
ExecPlan plan_exec(const ExecRequest& request, InstanceEntry& entry);

struct ExecResult {
  runtime::CommandEnd end;
  int status = 0;  // exit_status(end)
};

// plan_exec, then enters the instance and runs the command. A failure on
// the way in throws haco::Error naming the instance and the step.
ExecResult exec(const ExecRequest& request, InstanceEntry& entry);

}  // namespace haco::ops
