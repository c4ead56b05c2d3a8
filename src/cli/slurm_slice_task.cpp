#include "cli/slurm_slice_task.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/ops_slurm.hpp"
#include "haco/printable.hpp"
#include "haco/state.hpp"

namespace haco::cli {
namespace {

// The fleet name the definition gives (--name, else the file name without
// .haco), as `expand` derives it.
std::string base_fleet_name(const UpOptions& options) {
  if (!options.expand.fleet_name.empty()) return options.expand.fleet_name;
  return std::filesystem::path(options.expand.definition).stem().string();
}

}  // namespace

SliceTask SliceTask::begin(GlobalOptions& global, UpOptions& options, ops::SupervisorClient& supervisor,
                           ops::Sink& sink) {
  slurm::TaskPlace place = slurm::task_place_from_environment();
  auto slices = slurm::split_ports(fleet::parse_port_range(options.expand.ports), place.tasks);
  const slurm::Slice& mine = slices[place.task];

  auto cleared = ops::clear_finished_slices(global.state_root, global.data_root, place.node, std::nullopt,
                                            supervisor, sink);
  if (cleared.failed > 0)
    sink.warning(fmt::format("{} finished slice(s) on {} could not be taken down", cleared.failed, place.node));

  slurm::SliceRecord record;
  record.job = place.job;
  record.index = place.task;
  record.count = place.tasks;
  record.node = place.node;
  record.fleet = slurm::slice_fleet_name(base_fleet_name(options), place.job, place.task);
  record.ports = slurm::port_list_text(mine.ports);
  record.owner = state::identify(::getpid()).value_or(state::ProcessIdentity{});

  options.expand.fleet_name = record.fleet;
  options.expand.ports = record.ports;
  options.foreground = true;
  std::string root = slurm::slice_state_root(global.state_root, place.job, place.task);
  global.state_root = root;
  SliceTask task(std::move(record), root, global.data_root);
  task.report("starting");
  return task;
}

void SliceTask::report(const std::string& state, const std::string& detail) {
  record_.state = state;
  record_.detail = printable(detail);
  record_.updated_unix_ms = state::unix_now_ms();
  try {
    // Once the slice is taken down its state root is gone: only the line.
    if (state == "starting" || std::filesystem::exists(root_)) slurm::write_slice_record(root_, record_);
  } catch (const Error& e) {
    std::fprintf(stderr, "haco-fleet: recording the slice: %s\n", e.what());
  }
  std::printf("%s\n", slurm::slice_report_line(record_).c_str());
  std::fflush(stdout);
}

bool SliceTask::end(ops::SupervisorClient& supervisor, ops::Sink& sink) {
  if (!std::filesystem::exists(root_)) return true;
  return ops::take_down_slice(root_, data_root_, supervisor, sink);
}

std::string first_failure_text(const std::map<std::string, std::string>& failures) {
  if (failures.empty()) return "";
  const auto& [instance, reason] = *failures.begin();
  std::string text = instance + ": " + reason;
  if (failures.size() > 1) text += fmt::format(" (and {} more)", failures.size() - 1);
  return text;
}

}  // namespace haco::cli
