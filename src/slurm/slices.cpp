#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/names.hpp"
#include "haco/parse_number.hpp"
#include "haco/slurm.hpp"

namespace haco::slurm {

std::vector<Slice> split_ports(const std::vector<std::uint16_t>& ports, unsigned count) {
  if (count == 0) throw InputError("a fleet needs at least one slice (--nodes 1 or more)");
  if (count > ports.size())
    throw InputError(fmt::format("{} slices for {} ports: each slice needs at least one port", count, ports.size()));
  std::vector<Slice> slices;
  std::size_t base = ports.size() / count, extra = ports.size() % count, next = 0;
  for (unsigned i = 0; i < count; ++i) {
    std::size_t size = base + (i < extra ? 1 : 0);
    Slice s{i, count, {}};
    s.ports.assign(ports.begin() + static_cast<std::ptrdiff_t>(next),
                   ports.begin() + static_cast<std::ptrdiff_t>(next + size));
    next += size;
    slices.push_back(std::move(s));
  }
  return slices;
}

std::string port_list_text(const std::vector<std::uint16_t>& ports) {
  std::string text;
  for (std::size_t i = 0; i < ports.size();) {
    std::size_t j = i;
    while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1) ++j;
    if (!text.empty()) text += ',';
    text += j == i ? std::to_string(ports[i]) : fmt::format("{}-{}", ports[i], ports[j]);
    i = j + 1;
  }
  return text;
}

namespace {

std::string required_variable(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value)
    throw InputError(fmt::format("{} is not set: --slurm-slice runs as a task of a Slurm job (srun, or the "
                                 "job `haco-fleet slurm submit` makes)",
                                 name));
  return value;
}

unsigned count_variable(const char* name) {
  std::string text = required_variable(name);
  auto value = parse_u32(text);
  if (!value) throw InputError(fmt::format("{}='{}' is not a whole number", name, text));
  return *value;
}

}  // namespace

TaskPlace task_place_from_environment() {
  TaskPlace place;
  place.job = required_variable("SLURM_JOB_ID");
  if (auto problem = name_problem(place.job)) throw InputError("SLURM_JOB_ID='" + place.job + "': " + *problem);
  place.task = count_variable("SLURM_PROCID");
  place.tasks = count_variable("SLURM_NTASKS");
  if (place.tasks == 0 || place.task >= place.tasks)
    throw InputError(fmt::format("SLURM_PROCID={} is not a task of SLURM_NTASKS={}", place.task, place.tasks));
  place.node = required_variable("SLURMD_NODENAME");
  return place;
}

std::string slice_fleet_name(const std::string& fleet, const std::string& job, unsigned index) {
  std::string name = fmt::format("{}-j{}-s{}", fleet, job, index);
  check_name("slice fleet name", name);
  return name;
}

std::string slices_dir(const std::string& state_root) { return state_root + "/slurm"; }

std::string slice_state_root(const std::string& state_root, const std::string& job, unsigned index) {
  return fmt::format("{}/{}.{}", slices_dir(state_root), job, index);
}

}  // namespace haco::slurm
