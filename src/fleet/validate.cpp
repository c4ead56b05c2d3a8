// Checks an expanded fleet as a whole. Every conflict is collected so that
// the user can fix them in one go.
#include <algorithm>
#include <map>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/names.hpp"
#include "haco/printable.hpp"

namespace haco::fleet {
namespace {

constexpr std::uint64_t kOverflowId = 65535;        // the kernel's "no mapping" id
constexpr std::uint64_t kInvalidId = 4294967295;    // (uid_t)-1
constexpr size_t kMaxListedConflicts = 25;

struct HostRange {
  std::uint64_t first;
  std::uint64_t last;  // inclusive
  size_t instance;
};

std::string describe(const InstanceSpec& i) {
  return "'" + i.container.name + "' (port " + std::to_string(i.port) + ")";
}

std::string range_text(std::uint64_t first, std::uint64_t last) {
  return std::to_string(first) + "-" + std::to_string(last);
}

class Conflicts {
 public:
  void add(std::string line) {
    ++total_;
    if (lines_.size() < kMaxListedConflicts) lines_.push_back(std::move(line));
  }
  void throw_if_any() const {
    if (total_ == 0) return;
    std::string message = "the fleet is not valid (" + std::to_string(total_) + " problem" + (total_ > 1 ? "s" : "") + "):";
    for (const auto& line : lines_) message += "\n  - " + line;
    if (total_ > lines_.size()) message += "\n  - ... and " + std::to_string(total_ - lines_.size()) + " more";
    throw InputError(message);
  }

 private:
  std::vector<std::string> lines_;
  size_t total_ = 0;
};

template <typename Key>
void check_unique(const std::vector<InstanceSpec>& instances, const char* what, Key key, Conflicts& conflicts) {
  std::map<std::string, size_t> first_owner;
  for (size_t i = 0; i < instances.size(); ++i) {
    auto [it, inserted] = first_owner.emplace(key(instances[i]), i);
    if (!inserted)
      conflicts.add(describe(instances[it->second]) + " and " + describe(instances[i]) + " have the same " + what +
                    " " + it->first);
  }
}

void check_id_ranges(const std::vector<InstanceSpec>& instances, const char* kind, bool uids,
                     const std::vector<std::pair<std::uint32_t, std::string>>& host_ids,
                     const std::vector<HostIds::Range>& host_ranges, Conflicts& conflicts) {
  std::vector<HostRange> ranges;
  for (size_t i = 0; i < instances.size(); ++i) {
    const auto& maps = uids ? instances[i].container.uid_map : instances[i].container.gid_map;
    for (const auto& m : maps) {
      std::uint64_t first = m.outside, last = std::uint64_t(m.outside) + m.count - 1;
      ranges.push_back({first, last, i});
      if (last >= kInvalidId)
        conflicts.add(std::string(kind) + " range " + range_text(first, last) + " of " + describe(instances[i]) +
                      " does not fit below 4294967295");
      else if (first <= kOverflowId && kOverflowId <= last)
        conflicts.add(std::string(kind) + " range " + range_text(first, last) + " of " + describe(instances[i]) +
                      " includes 65535, the kernel's overflow id");
      for (const auto& [id, owner] : host_ids)
        if (first <= id && id <= last)
          conflicts.add(std::string(kind) + " range " + range_text(first, last) + " of " + describe(instances[i]) +
                        " includes " + kind + " " + std::to_string(id) + " (" + owner + ")");
      for (const auto& r : host_ranges) {
        std::uint64_t r_last = std::uint64_t(r.start) + r.count - 1;
        if (first <= r_last && r.start <= last)
          conflicts.add(std::string(kind) + " range " + range_text(first, last) + " of " + describe(instances[i]) +
                        " overlaps " + range_text(r.start, r_last) + ", " + r.owner);
      }
    }
  }
  // Sweep over ranges sorted by start: each range is compared only with the
  // ones that begin before it ends.
  std::sort(ranges.begin(), ranges.end(), [](const HostRange& a, const HostRange& b) { return a.first < b.first; });
  for (size_t a = 0; a < ranges.size(); ++a)
    for (size_t b = a + 1; b < ranges.size() && ranges[b].first <= ranges[a].last; ++b)
      if (ranges[a].instance != ranges[b].instance)
        conflicts.add(std::string(kind) + " ranges overlap: " + describe(instances[ranges[a].instance]) + " maps " +
                      range_text(ranges[a].first, ranges[a].last) + ", " + describe(instances[ranges[b].instance]) +
                      " maps " + range_text(ranges[b].first, ranges[b].last));
}

}  // namespace

void validate_fleet(const std::vector<InstanceSpec>& instances, const HostIds& host, bool allow_shared_rootfs) {
  Conflicts conflicts;
  for (const auto& i : instances)
    if (auto problem = name_problem(i.container.name))
      conflicts.add("the instance name '" + printable(i.container.name) + "' of port " + std::to_string(i.port) +
                    " is not valid: " + *problem);
  check_unique(instances, "name", [](const InstanceSpec& i) { return i.container.name; }, conflicts);
  check_unique(instances, "port", [](const InstanceSpec& i) { return std::to_string(i.port); }, conflicts);

  if (!allow_shared_rootfs) {
    std::map<std::string, std::vector<size_t>> by_rootfs;
    for (size_t i = 0; i < instances.size(); ++i) by_rootfs[instances[i].container.rootfs].push_back(i);
    for (const auto& [rootfs, members] : by_rootfs) {
      if (members.size() < 2) continue;
      bool unmapped = std::any_of(members.begin(), members.end(),
                                  [&](size_t i) { return instances[i].container.uid_map.empty(); });
      conflicts.add(std::to_string(members.size()) + " instances (" + describe(instances[members[0]]) + ", " +
                    describe(instances[members[1]]) + (members.size() > 2 ? ", ..." : "") +
                    ") share the rootfs " + rootfs +
                    (unmapped ? " and have no uid/gid mapping: they would all run as host root on one tree"
                              : ": each instance needs its own tree") +
                    " (give each port its own chroot_to, or pass --allow-shared-rootfs to accept this)");
    }
  }

  check_id_ranges(instances, "uid", true, host.uids, host.reserved_uid_ranges, conflicts);
  check_id_ranges(instances, "gid", false, host.gids, host.reserved_gid_ranges, conflicts);
  conflicts.throw_if_any();
}

std::vector<std::string> instances_running_as_host_root(const std::vector<InstanceSpec>& instances) {
  std::vector<std::string> names;
  for (const auto& i : instances)
    if (!i.container.has_namespace(Namespace::user)) names.push_back(i.container.name);
  return names;
}

}  // namespace haco::fleet
