// The slices of Slurm jobs on this node (haco/slurm.hpp): taking one down,
// and clearing those a job's end or a killed task left.
#pragma once

#include <optional>
#include <string>

#include "haco/ops.hpp"
#include "haco/slurm.hpp"

namespace haco::ops {

// Every fleet of the slice's state root goes down with --purge; once none is
// left, the slice's state root goes too. Returns false (reported on `sink`)
// when something could not be taken down: the root stays for a later try.
bool take_down_slice(const std::string& slice_root, const std::string& data_root, SupervisorClient& supervisor,
                     Sink& sink);

struct ClearedSlices {
  std::size_t taken_down = 0;
  std::size_t failed = 0;
};

// The slices under STATE_ROOT/slurm placed on `node` that are over: those of
// `job` (the Epilog of that job), and those whose task no longer runs (its
// owner process is gone: a node or task killed with SIGKILL). A slice
// whose task still runs and that is not `job`'s is left alone.
ClearedSlices clear_finished_slices(const std::string& state_root, const std::string& data_root,
                                    const std::string& node, const std::optional<std::string>& job,
                                    SupervisorClient& supervisor, Sink& sink);

}  // namespace haco::ops
