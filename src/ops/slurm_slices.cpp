#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_slurm.hpp"
#include "haco/state.hpp"

namespace haco::ops {

bool take_down_slice(const std::string& slice_root, const std::string& data_root, SupervisorClient& supervisor,
                     Sink& sink) {
  bool all_down = true;
  for (const auto& fleet : state::list_fleets(slice_root)) {
    DownRequest request;
    request.state_root = slice_root;
    request.data_root = data_root;
    request.fleet = fleet;
    request.purge = true;
    try {
      if (down(request, supervisor, sink).failed > 0) all_down = false;
    } catch (const std::exception& e) {
      sink.error(fmt::format("slice {}: fleet {}: {}", slice_root, fleet, e.what()));
      all_down = false;
    }
  }
  if (!all_down || !state::list_fleets(slice_root).empty()) return false;
  // Left: slice.json, the registry's lock and claims of no fleet.
  std::error_code ec;
  std::filesystem::remove_all(slice_root, ec);
  if (ec) {
    sink.error(fmt::format("removing {}: {}", slice_root, ec.message()));
    return false;
  }
  return true;
}

ClearedSlices clear_finished_slices(const std::string& state_root, const std::string& data_root,
                                    const std::string& node, const std::optional<std::string>& job,
                                    SupervisorClient& supervisor, Sink& sink) {
  ClearedSlices cleared;
  for (const auto& root : slurm::list_slice_roots(state_root)) {
    std::optional<slurm::SliceRecord> record;
    try {
      record = slurm::read_slice_record(root);
    } catch (const Error& e) {
      sink.error(fmt::format("slice {}: {}", root, e.what()));
      ++cleared.failed;
      continue;
    }
    if (!record || record->node != node) continue;
    const bool of_job = job && record->job == *job;
    if (!of_job && state::is_alive(record->owner)) continue;
    sink.message(fmt::format("slice {}/{} of job {} on {} (fleet {}): {}; taking it down", record->index + 1,
                             record->count, record->job, record->node, record->fleet,
                             of_job ? "its job ended" : "its task is gone"));
    if (take_down_slice(root, data_root, supervisor, sink))
      ++cleared.taken_down;
    else
      ++cleared.failed;
  }
  return cleared;
}

}  // namespace haco::ops
