// haco-fleet slurm: a fleet spread over the nodes of one Slurm job
// (docs/multi-host.md). `submit` makes the job, `status` shows it, `epilog`
// is run by Slurm on each node at the job's end; the hidden `job` is the
// job's batch step, which starts one task per node with srun and says when
// every slice serves.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/expand_options.hpp"
#include "cli/privilege.hpp"
#include "cli/progress_sink.hpp"
#include "cli/up_options.hpp"
#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/names.hpp"
#include "haco/ops_slurm.hpp"
#include "haco/printable.hpp"
#include "haco/run_program.hpp"
#include "haco/slurm.hpp"
#include "haco/unique_fd.hpp"

namespace haco::cli {
namespace {

constexpr unsigned kMaxSlices = 10000;

// --- submit ------------------------------------------------------------------

struct SubmitOptions {
  std::string ports;
  unsigned nodes = 0;
  std::string partition;
  std::string time_limit;
  std::string name;
  std::string output;
  std::vector<std::string> sbatch_args;
  std::string definition;
  std::vector<std::string> up_args;
};

// The `up` options a task may be given: those that are the same for every
// slice. The ports, the name and the foreground are the job's to set; files
// written by `up` would be written by every task at once.
void check_up_args(const std::vector<std::string>& args) {
  static const char* const kJobsOwn[] = {"--ports", "-p",     "--name",  "--foreground", "--slurm-slice",
                                         "--no-wait", "--json", "--trace", "--samples"};
  for (const auto& a : args)
    for (const char* own : kJobsOwn)
      if (a == own || a.rfind(std::string(own) + "=", 0) == 0)
        throw InputError(fmt::format("{} cannot be given after --: the job sets it for each slice", own));
}

// Parses the `up` options as every task will, so that a mistake is exit 2
// here and not a failed job later.
UpOptions parse_up_args(const SubmitOptions& submit) {
  check_up_args(submit.up_args);
  UpOptions options;
  CLI::App scratch{"up"};
  add_up_options(scratch, options);
  std::vector<std::string> args = submit.up_args;
  args.insert(args.end(), {"--ports", submit.ports, submit.definition});
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    scratch.parse(args);
  } catch (const CLI::ParseError& e) {
    throw InputError(fmt::format("the up options after --: {}", e.what()));
  }
  return options;
}

int run_submit(const GlobalOptions& global, const SubmitOptions& submit) {
  UpOptions up = parse_up_args(submit);
  up.expand.fleet_name = submit.name;
  auto expanded = expand_from_options(up.expand);
  auto ports = fleet::parse_port_range(submit.ports);
  auto slices = slurm::split_ports(ports, submit.nodes);
  // The longest slice name the job can give (a job id of 10 digits).
  slurm::slice_fleet_name(expanded.fleet_name, "9999999999", submit.nodes - 1);

  std::string exe = own_program_path();
  std::string definition = std::filesystem::absolute(submit.definition).string();
  std::vector<std::string> task{exe,          "--root",        global.state_root, "--data-root", global.data_root,
                                "up",         "--foreground",  "--slurm-slice",   "--ports",     submit.ports,
                                "--name",     expanded.fleet_name};
  task.insert(task.end(), submit.up_args.begin(), submit.up_args.end());
  task.push_back(definition);
  std::vector<std::string> job{exe,        "--root",   global.state_root, "--data-root", global.data_root, "slurm",
                               "job",      "--slices", std::to_string(submit.nodes), "--"};
  job.insert(job.end(), task.begin(), task.end());

  std::string output = submit.output.empty()
                           ? (std::filesystem::current_path() / ("haco-fleet-" + expanded.fleet_name + "-%j.out")).string()
                           : std::filesystem::absolute(submit.output).string();
  std::vector<std::string> sbatch{"--job-name=haco-" + expanded.fleet_name,
                                  "--nodes=" + std::to_string(submit.nodes),
                                  "--ntasks=" + std::to_string(submit.nodes),
                                  "--ntasks-per-node=1",
                                  "--output=" + output};
  if (!submit.partition.empty()) sbatch.push_back("--partition=" + submit.partition);
  if (!submit.time_limit.empty()) sbatch.push_back("--time=" + submit.time_limit);
  sbatch.insert(sbatch.end(), submit.sbatch_args.begin(), submit.sbatch_args.end());

  std::string id = slurm::submit_batch(sbatch, slurm::shell_words(job));

  slurm::SubmittedJob record;
  record.job = id;
  record.fleet = expanded.fleet_name;
  record.definition = definition;
  record.ports = submit.ports;
  record.slices = submit.nodes;
  for (const auto& s : slices) record.slice_ports.push_back(slurm::port_list_text(s.ports));
  std::string::size_type at = output.find("%j");
  record.output = at == std::string::npos ? output : output.replace(at, 2, id);
  record.submitted_unix_ms = state::unix_now_ms();
  try {
    slurm::write_submitted_job(global.state_root, record);
  } catch (const Error& e) {
    std::fprintf(stderr, "haco-fleet: job %s submitted, but not recorded here: %s\n", id.c_str(), e.what());
  }
  std::printf("job %s: fleet %s, %zu ports in %u slices of %s ports, one per node\n", id.c_str(),
              expanded.fleet_name.c_str(), ports.size(), submit.nodes,
              slices.front().ports.size() == slices.back().ports.size()
                  ? std::to_string(slices.front().ports.size()).c_str()
                  : fmt::format("{}-{}", slices.back().ports.size(), slices.front().ports.size()).c_str());
  std::printf("output: %s\n", record.output.c_str());
  std::printf("see: haco-fleet slurm status %s; stop: scancel %s\n", id.c_str(), id.c_str());
  return kExitOk;
}

// --- job (the batch step) ---------------------------------------------------

volatile sig_atomic_t g_forwarded_signal = 0;
void note_signal(int signal) { g_forwarded_signal = signal; }

// Runs srun with the task command, its output (both streams) through this
// process: each line passed on to the job's output, read for the slices'
// reports. SIGTERM and SIGINT (scancel, the time limit) are passed to srun,
// which passes them to the tasks; this process stays to pass on what they
// print while they take their slices down.
int run_job(unsigned slices, const std::vector<std::string>& task) {
  struct sigaction action {};
  action.sa_handler = note_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);

  std::vector<std::string> argv{"srun", "--ntasks=" + std::to_string(slices), "--ntasks-per-node=1",
                                "--kill-on-bad-exit=1"};
  argv.insert(argv.end(), task.begin(), task.end());
  SpawnedProgram spawned = spawn_program(argv);
  const pid_t srun = spawned.pid;
  UniqueFd& read_end = spawned.output;

  std::printf("haco-fleet job: %u slices, one task per node: %s\n", slices, slurm::shell_words(argv).c_str());
  std::fflush(stdout);
  slurm::JobProgress progress(slices);
  std::string pending;
  char chunk[4096];
  bool forwarded = false;
  for (;;) {
    if (g_forwarded_signal && !forwarded) {
      ::kill(srun, g_forwarded_signal);
      forwarded = true;
    }
    ssize_t n = ::read(read_end.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      std::printf("%s\n", line.c_str());
      if (auto said = progress.feed(line)) std::printf("%s\n", said->c_str());
    }
    std::fflush(stdout);
  }
  if (!pending.empty()) std::printf("%s\n", pending.c_str());
  int status = 0;
  while (::waitpid(srun, &status, 0) < 0)
    if (errno != EINTR) throw Error::from_errno("waitpid", "srun", errno);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::printf("haco-fleet job: srun ended (exit %d); %s\n", code,
              progress.any_failed() ? "a slice failed" : progress.all_ready() ? "every slice was ready" : "not every slice became ready");
  std::fflush(stdout);
  return code == 0 && !progress.any_failed() ? kExitOk : kExitFailed;
}

// --- status ------------------------------------------------------------------

struct SliceView {
  unsigned index = 0;
  std::string ports;
  std::string node;
  std::string state = "-";
  std::string detail;
};

// The last report of each slice in the job's output file.
std::map<unsigned, slurm::SliceRecord> reports_in_output(const std::string& path, const std::string& job) {
  std::map<unsigned, slurm::SliceRecord> last;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (auto r = slurm::parse_slice_report_line(line); r && r->job == job) last[r->index] = *r;
  return last;
}

bool output_says_all_ready(const std::string& path, const std::string& job) {
  std::ifstream in(path);
  std::string mark = "haco-fleet job " + job + ": the whole fleet serves";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(mark, 0) == 0) return true;
  return false;
}

int run_status(const GlobalOptions& global, const std::string& job, bool json) {
  if (auto problem = name_problem(job)) throw InputError("job id '" + printable(job) + "': " + *problem);
  auto record = slurm::read_submitted_job(global.state_root, job);
  auto info = slurm::show_job(job);
  if (!record && !info)
    throw InputError(fmt::format("Slurm does not know job {} (any more: it forgets finished jobs after MinJobAge), "
                                 "and it was not submitted from this host",
                                 job));
  std::string output = record ? record->output : info->stdout_path;
  unsigned count = record ? record->slices : static_cast<unsigned>(info->nodes.size());
  auto reports = reports_in_output(output, job);
  std::vector<SliceView> slices;
  for (unsigned i = 0; i < count; ++i) {
    SliceView v;
    v.index = i;
    if (record && i < record->slice_ports.size()) v.ports = record->slice_ports[i];
    // One task per node, in the order of the job's node list (block distribution).
    if (info && i < info->nodes.size()) v.node = info->nodes[i];
    if (auto r = reports.find(i); r != reports.end()) {
      v.state = r->second.state;
      v.detail = r->second.detail;
      v.node = r->second.node;
      if (v.ports.empty()) v.ports = r->second.ports;
    }
    slices.push_back(v);
  }
  bool serves = output_says_all_ready(output, job);
  if (json) {
    nlohmann::json out = {{"job", job},
                          {"fleet", record ? nlohmann::json(record->fleet) : nlohmann::json()},
                          {"ports", record ? nlohmann::json(record->ports) : nlohmann::json()},
                          {"slurm_state", info ? nlohmann::json(info->state) : nlohmann::json()},
                          {"slurm_reason", info ? nlohmann::json(info->reason) : nlohmann::json()},
                          {"nodes", info ? nlohmann::json(info->nodes) : nlohmann::json::array()},
                          {"run_time", info ? nlohmann::json(info->run_time) : nlohmann::json()},
                          {"exit_code", info ? nlohmann::json(info->exit_code) : nlohmann::json()},
                          {"whole_fleet_served", serves},
                          {"output", output}};
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : slices)
      list.push_back({{"slice", s.index + 1}, {"ports", s.ports}, {"node", s.node}, {"state", s.state},
                      {"detail", s.detail}});
    out["slices"] = list;
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  if (info)
    std::printf("job %s (%s): %s%s, run time %s of %s, nodes %s, exit code %s\n", job.c_str(), info->name.c_str(),
                info->state.c_str(), info->reason.empty() || info->reason == "None" ? "" : (" (" + info->reason + ")").c_str(),
                info->run_time.c_str(), info->time_limit.c_str(), info->node_list.c_str(), info->exit_code.c_str());
  else
    std::printf("job %s: Slurm no longer knows it (finished more than MinJobAge ago)\n", job.c_str());
  if (record)
    std::printf("fleet %s (%s): ports %s in %u slices%s\n", record->fleet.c_str(), record->definition.c_str(),
                record->ports.c_str(), record->slices, serves ? "; the whole fleet served" : "");
  std::size_t ports_width = 5, node_width = 4;
  for (const auto& s : slices) {
    ports_width = std::max(ports_width, s.ports.size());
    node_width = std::max(node_width, s.node.size());
  }
  std::printf("%-7s  %-*s  %-*s  %-8s  %s\n", "SLICE", int(ports_width), "PORTS", int(node_width), "NODE", "STATE",
              "DETAIL");
  for (const auto& s : slices)
    std::printf("%-7s  %-*s  %-*s  %-8s  %s\n", fmt::format("{}/{}", s.index + 1, count).c_str(), int(ports_width),
                s.ports.c_str(), int(node_width), s.node.empty() ? "-" : s.node.c_str(), s.state.c_str(),
                printable(s.detail).c_str());
  std::printf("output: %s\n", output.c_str());
  return kExitOk;
}

// --- epilog ------------------------------------------------------------------

std::string this_node() {
  if (const char* node = std::getenv("SLURMD_NODENAME"); node && *node) return node;
  char host[256] = {};
  check_sys(::gethostname(host, sizeof(host) - 1), "gethostname");
  std::string name = host;
  return name.substr(0, name.find('.'));
}

int run_epilog(const GlobalOptions& global) {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (!job || !*job) throw InputError("SLURM_JOB_ID is not set: `slurm epilog` is run by Slurm as its Epilog");
  auto supervisor = ops::control_supervisor();
  ProgressSink sink("epilog", {"down"}, global.level());
  std::string node = this_node();
  auto cleared = ops::clear_finished_slices(global.state_root, global.data_root, node, std::string(job),
                                            *supervisor, sink);
  if (cleared.taken_down > 0 || cleared.failed > 0)
    std::printf("haco-fleet epilog for job %s on %s: %zu slice(s) taken down, %zu failed\n", job, node.c_str(),
                cleared.taken_down, cleared.failed);
  // A failing Epilog drains the node (Slurm's rule): right when something of
  // a fleet stayed on it.
  return cleared.failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace

void add_slurm_command(CLI::App& app, GlobalOptions& global, int& exit_status) {
  auto* slurm = app.add_subcommand("slurm", "A fleet over the nodes of a Slurm job: submit, status, epilog");
  slurm->require_subcommand(1);
  slurm->footer(
      "Example: a fleet of 100 phpinfo containers over 2 nodes, then where its slices run:\n"
      "  haco-fleet slurm submit --ports 10001-10100 --nodes 2 templates/phpinfo.haco");

  auto* submit = slurm->add_subcommand(
      "submit",
      "Submit one Slurm job whose K tasks, one per node, each run `up --foreground --slurm-slice` for a "
      "contiguous slice of the ports");
  auto s = std::make_shared<SubmitOptions>();
  submit->add_option("-p,--ports", s->ports, "The whole fleet's ports, e.g. 10001-20000")->required();
  submit->add_option("--nodes", s->nodes, "Nodes, one task and one slice each: 1 to " + std::to_string(kMaxSlices))
      ->required()
      ->check(CLI::Range(1u, kMaxSlices));
  submit->add_option("--partition", s->partition, "Slurm partition (sbatch --partition)");
  submit->add_option("--time", s->time_limit, "Time limit (sbatch --time), after which Slurm ends the fleet");
  submit->add_option("--name", s->name, "Fleet name (default: the definition's file name without .haco)")
      ->check(fleet_name_rule());
  submit->add_option("--output", s->output,
                     "The job's output file (sbatch --output; %j is the job id); default "
                     "./haco-fleet-FLEET-%j.out");
  submit->add_option("--sbatch-arg", s->sbatch_args, "One more sbatch option, e.g. --sbatch-arg=--exclusive")
      ->allow_extra_args(false);
  submit->add_option("definition", s->definition, "The haconiwa definition (.haco file), on a path every node sees")
      ->required();
  submit->add_option("up-options", s->up_args,
                     "After --: `up` options for every slice (--ready, --restart, --timeout, --rootfs, --pids-max...)");
  submit->footer(
      "After --, options of `up` for every slice, e.g. `-- --ready http:/index.php --restart on-failure`.\n"
      "Example: 10000 tenants over 20 nodes of the partition web, 500 per node:\n"
      "  haco-fleet slurm submit --ports 10001-20000 --nodes 20 --partition web templates/phpinfo.haco");
  submit->callback([s, &global, &exit_status] {
    if (!running_as_root("slurm submit")) {
      exit_status = kExitBadInput;
      return;
    }
    exit_status = run_submit(global, *s);
  });

  auto* status = slurm->add_subcommand(
      "status", "A submitted fleet: Slurm's state of the job, and each slice's ports, node and state");
  auto job_id = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  status->add_option("job", *job_id, "The job id sbatch gave")->required();
  status->add_flag("--json", *json, "Print JSON");
  status->footer("Example: the slices of job 42, where they run and whether they serve:\n  haco-fleet slurm status 42");
  status->callback([job_id, json, &global, &exit_status] { exit_status = run_status(global, *job_id, *json); });

  auto* epilog = slurm->add_subcommand(
      "epilog",
      "Run by Slurm's Epilog on each node at a job's end (SLURM_JOB_ID): takes down, with --purge, the job's "
      "slices on this node and any slice whose task is gone; exit 1 (the node drains) if one stays");
  epilog->footer(
      "Slurm runs it through the installed script (in slurm.conf: Epilog=/usr/libexec/haco-fleet/slurm-epilog).\n"
      "Example: what that script runs, as root, with SLURM_JOB_ID set:\n  haco-fleet slurm epilog");
  epilog->callback([&global, &exit_status] {
    if (!running_as_root("slurm epilog")) {
      exit_status = kExitBadInput;
      return;
    }
    exit_status = run_epilog(global);
  });

  auto* job = slurm->add_subcommand("job", "The batch step of a `slurm submit` job");
  job->group("");
  auto slices = std::make_shared<unsigned>(1);
  auto task = std::make_shared<std::vector<std::string>>();
  job->add_option("--slices", *slices)->required()->check(CLI::Range(1u, kMaxSlices));
  job->add_option("task", *task)->required();
  job->callback([slices, task, &exit_status] { exit_status = run_job(*slices, *task); });
}

}  // namespace haco::cli
