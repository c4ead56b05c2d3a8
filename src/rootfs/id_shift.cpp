#include <fmt/format.h>

#include <optional>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"

namespace haco::rootfs {
namespace {

std::optional<std::uint32_t> map_id(const std::vector<IdMapping>& map, std::uint32_t id) {
  for (const IdMapping& m : map)
    if (id >= m.inside && id - m.inside < m.count) return m.outside + (id - m.inside);
  return std::nullopt;
}

}  // namespace

std::string_view strategy_name(Strategy s) { return s == Strategy::extract ? "extract" : "overlay"; }

std::string_view ownership_policy_name(OwnershipPolicy p) {
  switch (p) {
    case OwnershipPolicy::shift: return "shift";
    case OwnershipPolicy::squash: return "squash";
    case OwnershipPolicy::flat: return "flat";
  }
  return "?";
}

IdShift::IdShift(std::vector<IdMapping> uid_map, std::vector<IdMapping> gid_map, OwnershipPolicy policy)
    : uid_map_(std::move(uid_map)), gid_map_(std::move(gid_map)), policy_(policy) {
  if (uid_map_.empty() != gid_map_.empty())
    throw Error("a uid mapping needs a gid mapping and the other way round");
  if (!uid_map_.empty() && (!map_id(uid_map_, 0) || !map_id(gid_map_, 0)))
    throw Error("the uid/gid mapping does not map id 0 (the instance's root)");
}

std::uint32_t IdShift::root_uid() const { return uid_map_.empty() ? 0 : *map_id(uid_map_, 0); }

Owner IdShift::map(std::uint32_t uid, std::uint32_t gid, std::string_view entry) const {
  if (uid_map_.empty()) return {uid, gid};
  Owner root{*map_id(uid_map_, 0), *map_id(gid_map_, 0)};
  if (policy_ == OwnershipPolicy::flat) return root;
  auto u = map_id(uid_map_, uid);
  auto g = map_id(gid_map_, gid);
  if (u && g) return {*u, *g};
  if (policy_ == OwnershipPolicy::squash) return {u.value_or(root.uid), g.value_or(root.gid)};
  throw Error(fmt::format("entry '{}': owner {}:{} is outside the instance's mapped id range "
                          "(use the squash ownership policy to map it to the instance's root)",
                          entry, uid, gid));
}

}  // namespace haco::rootfs
