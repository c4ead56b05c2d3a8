// extract_archive's engine over any source the reader takes: one archive,
// or OCI layers read in order (src/rootfs/oci_layers.cpp).
#pragma once

#include <string>
#include <vector>

#include "haco/rootfs.hpp"
#include "rootfs/archive_reader.hpp"

namespace haco::rootfs {

struct ArchiveSource {
  std::vector<std::string> archives;
  LayerNames names = LayerNames::plain;
  EntryFilter keep;
};

// As extract_archive; `what` names the source in errors.
ExtractStats extract_source(const ArchiveSource& source, const std::string& what,
                            const std::vector<ExtractTarget>& targets, const ExtractOptions& options);

}  // namespace haco::rootfs
