// The rootfs of an instance whose record was lost, found from what the
// rootfs engine leaves on the host.
#include <filesystem>

#include "haco/layout.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/mounts.hpp"

namespace haco::rootfs {

std::optional<PreparedRootfs> find_unrecorded_rootfs(const std::string& data_root, const std::string& instance,
                                                     const std::string& claimed_rootfs) {
  const layout::DataRoot root(data_root);
  PreparedRootfs found;
  found.instance = instance;
  found.rootfs = claimed_rootfs;
  std::error_code ec;
  if (std::filesystem::exists(root.instance_upper(instance), ec)) {
    found.strategy = Strategy::overlay;
    found.upper_dir = root.instance_upper(instance);
    found.work_dir = root.instance_work(instance);
    // Mounted: wherever the mount says (the claim may be missing).
    if (std::string mounted = overlay_using_upper(found.upper_dir); !mounted.empty()) found.rootfs = mounted;
    if (found.rootfs.empty()) return std::nullopt;
    return found;
  }
  if (claimed_rootfs.empty() || !std::filesystem::exists(claimed_rootfs, ec)) return std::nullopt;
  found.strategy = Strategy::extract;
  return found;
}

}  // namespace haco::rootfs
