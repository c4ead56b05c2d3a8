// `up --slurm-slice`: one task of a Slurm job runs its slice of the fleet's
// ports as a fleet of its own on its node (haco/slurm.hpp,
// docs/multi-host.md).
#pragma once

#include <string>

#include "cli/commands.hpp"
#include "cli/up_options.hpp"
#include "haco/ops.hpp"
#include "haco/slurm.hpp"

namespace haco::cli {

class SliceTask {
 public:
  // Reads where this task runs (InputError outside a Slurm step), narrows
  // `options` to the task's slice (its ports, its fleet name, in the
  // foreground) and `global` to the slice's state root, takes down the
  // slices on this node that are over (their task gone), then records the
  // slice and reports it starting.
  static SliceTask begin(GlobalOptions& global, UpOptions& options, ops::SupervisorClient& supervisor,
                         ops::Sink& sink);

  // Records the slice's state and prints its line (slurm::slice_report_line)
  // on stdout, which the job's batch step reads.
  void report(const std::string& state, const std::string& detail = "");

  // The slice is over: whatever of it is left goes (down --purge), then its
  // state root. False when something stayed (reported on `sink`).
  bool end(ops::SupervisorClient& supervisor, ops::Sink& sink);

 private:
  SliceTask(slurm::SliceRecord record, std::string root, std::string data_root)
      : record_(std::move(record)), root_(std::move(root)), data_root_(std::move(data_root)) {}
  slurm::SliceRecord record_;
  std::string root_;
  std::string data_root_;
};

// "web-10003: did not become ready in 60 s (and 2 more)"
std::string first_failure_text(const std::map<std::string, std::string>& failures);

}  // namespace haco::cli
