// A fleet spread over the nodes of a Slurm job (docs/multi-host.md): the
// ports split into one contiguous slice per task, each slice a fleet of its
// own on its node (its own name and state root), what each task reports in
// the job's output, and Slurm's own commands (sbatch, scontrol).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haco/state.hpp"

namespace haco::slurm {

// One task's share of the fleet's ports.
struct Slice {
  unsigned index = 0;  // the task's rank (SLURM_PROCID)
  unsigned count = 0;  // tasks in the step (SLURM_NTASKS)
  std::vector<std::uint16_t> ports;
};

// `ports` in order, cut into `count` contiguous slices whose sizes differ by
// at most one (the first ones take the remainder). InputError when `count`
// is 0 or larger than the number of ports.
std::vector<Slice> split_ports(const std::vector<std::uint16_t>& ports, unsigned count);

// The ports as the shortest --ports text: "10001-10050", "80,10001-10003".
std::string port_list_text(const std::vector<std::uint16_t>& ports);

// Where a task runs, from the variables Slurm gives every task.
struct TaskPlace {
  std::string job;     // SLURM_JOB_ID
  unsigned task = 0;   // SLURM_PROCID
  unsigned tasks = 0;  // SLURM_NTASKS
  std::string node;    // SLURMD_NODENAME (the node's name in Slurm)
};
// InputError naming the variable that is missing or malformed: `up
// --slurm-slice` outside a Slurm step.
TaskPlace task_place_from_environment();

// A slice's fleet name: FLEET-JJOB-SINDEX ("web-j42-s1"): unique across the
// cluster, so a fleet's slices never share a name, a unit or a cgroup.
std::string slice_fleet_name(const std::string& fleet, const std::string& job, unsigned index);
// Every slice's state root lives below STATE_ROOT/slurm.
std::string slices_dir(const std::string& state_root);
// STATE_ROOT/slurm/JOB.INDEX
std::string slice_state_root(const std::string& state_root, const std::string& job, unsigned index);

// slice.json in a slice's state root: where the slice runs and how it is.
struct SliceRecord {
  std::string job;
  unsigned index = 0;
  unsigned count = 0;
  std::string node;
  std::string fleet;  // the slice's fleet name
  std::string ports;  // port_list_text of the slice
  std::string state;  // starting, ready, failed, stopping, stopped
  std::string detail;  // "50/50 ready", or why it failed
  state::ProcessIdentity owner;  // the task (`up --foreground --slurm-slice`) that holds the slice
  std::int64_t updated_unix_ms = 0;
};
void write_slice_record(const std::string& slice_root, const SliceRecord& record);
// nullopt when the file does not exist; Error when it cannot be read.
std::optional<SliceRecord> read_slice_record(const std::string& slice_root);
// Every slice state root below STATE_ROOT/slurm (those with a slice.json), sorted.
std::vector<std::string> list_slice_roots(const std::string& state_root);

// The line a task prints in the job's output at each change of its slice,
// and that the job's batch step reads back:
//   haco-fleet slice 2/2 of job 42 on node2 (ports 10051-10100): ready 50/50
//   haco-fleet slice 1/2 of job 42 on node1 (ports 10001-10050): failed: <why>
std::string slice_report_line(const SliceRecord& record);
std::optional<SliceRecord> parse_slice_report_line(std::string_view line);

// What the job's batch step has seen of its slices, fed the job's output one
// line at a time.
class JobProgress {
 public:
  explicit JobProgress(unsigned slices) : slices_(slices) {}
  // A line the tasks printed; returns what the batch step should print about
  // the whole fleet, once: when every slice is ready, or when one failed.
  std::optional<std::string> feed(std::string_view line);
  bool all_ready() const { return ready_.size() == slices_; }
  bool any_failed() const { return !failed_.empty(); }

 private:
  unsigned slices_;
  std::map<unsigned, SliceRecord> ready_;
  std::map<unsigned, SliceRecord> failed_;
  bool announced_ready_ = false;
};

// --- Slurm's own commands -------------------------------------------------

// Key=Value pairs of one line of `scontrol -o show ...` (values run to the
// next " Key=", so a value with spaces such as Reason=... stays whole).
std::map<std::string, std::string> parse_scontrol_record(std::string_view line);

struct JobInfo {
  std::string id;
  std::string name;
  std::string state;   // JobState: PENDING, RUNNING, CANCELLED, NODE_FAIL, TIMEOUT, FAILED, COMPLETED...
  std::string reason;  // Reason
  std::string node_list;  // NodeList as Slurm prints it (node[1-2])
  std::vector<std::string> nodes;  // expanded, in Slurm's order (task i of a block distribution is on nodes[i])
  std::string run_time;
  std::string time_limit;
  std::string exit_code;
  std::string stdout_path;
};
// `scontrol -o show job JOB`; nullopt when Slurm no longer knows the job
// (it forgets finished jobs after MinJobAge). Error when scontrol fails
// otherwise (no controller, no scontrol).
std::optional<JobInfo> show_job(const std::string& job);

// `scontrol show hostnames LIST`: node[1-3] -> node1 node2 node3.
std::vector<std::string> expand_hostlist(const std::string& list);

// `sbatch --parsable ARGS... --wrap COMMAND`: the new job's id. Error with
// sbatch's own message when it refuses.
std::string submit_batch(const std::vector<std::string>& sbatch_args, const std::string& command);

// A command line as one /bin/sh string, each word quoted when it needs it.
std::string shell_words(const std::vector<std::string>& words);

// What `slurm submit` keeps on the submitting host: STATE_ROOT/slurm/jobs/JOB.json.
struct SubmittedJob {
  std::string job;
  std::string fleet;       // the fleet name the slices derive theirs from
  std::string definition;  // absolute
  std::string ports;       // the whole range
  unsigned slices = 0;
  std::vector<std::string> slice_ports;  // port_list_text of each slice
  std::string output;      // the job's output file
  std::int64_t submitted_unix_ms = 0;
};
std::string submitted_job_path(const std::string& state_root, const std::string& job);
void write_submitted_job(const std::string& state_root, const SubmittedJob& job);
std::optional<SubmittedJob> read_submitted_job(const std::string& state_root, const std::string& job);

}  // namespace haco::slurm
