// The layers of an OCI image on the host: their blobs checked against their
// digests, each cached once as an overlay lower layer under
// <data_root>/layers/<diff_id>/ (overlay strategy), or all applied in order
// into every instance's tree (extract strategy).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "haco/oci.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"

namespace haco::rootfs {

// The blob file of each wanted layer of `image`, checked against its
// digest: a layout's blob against the manifest's digest, a docker archive's
// member (copied out into the data root's staging directory, removed with
// this object) against the config's diff_id. A mismatch is an InputError
// naming the blob and both digests.
class LayerBlobs {
 public:
  LayerBlobs(const oci::Image& image, const std::vector<bool>& wanted, const std::string& data_root,
             const std::atomic<bool>* cancel);
  ~LayerBlobs();
  LayerBlobs(const LayerBlobs&) = delete;
  LayerBlobs& operator=(const LayerBlobs&) = delete;
  // The file of layer i (bottom first); empty for a layer not wanted.
  const std::string& path(std::size_t i) const { return paths_[i]; }
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::vector<std::string> paths_;
  std::string staging_;  // made here, removed by the destructor
};

// The sha256 (hex) of a layer's uncompressed tar.
std::string uncompressed_digest(const std::string& blob);

struct CachedLayers {
  std::vector<std::string> trees;     // <data_root>/layers/<hex>, top first (overlay's lowerdir order)
  std::vector<std::string> diff_ids;  // "sha256:<hex>", top first
  std::vector<std::uint32_t> uids, gids;  // owners in any layer
  std::size_t extracted_now = 0;
  std::vector<std::string> warnings;
  // Shared locks on the entries, held as long as this object lives (as
  // CachedImage::in_use).
  std::vector<std::shared_ptr<const UniqueFd>> in_use;
};

// Every layer of `image` in the layer cache, filled where missing under the
// layer's lock (as the image cache is: extracted beside, synced, renamed,
// then its .ids file written last as the completion marker).
CachedLayers ensure_cached_layers(const oci::Image& image, const std::string& data_root,
                                  const std::atomic<bool>* cancel);

// Which entry of which layer survives once the layers are applied in order
// (whiteouts and opaque directories of upper layers remove lower entries; a
// later entry replaces an earlier one): keep[layer][header]. Reads every
// layer's headers; throws haco::Error for a refused name.
std::vector<std::vector<char>> plan_flattened(const std::vector<std::string>& layers,
                                              const std::atomic<bool>* cancel);

// The extract strategy: `image`'s layers applied in order into every target
// (ids shifted as extract_archive does).
ExtractStats extract_image(const oci::Image& image, const std::string& data_root,
                           const std::vector<ExtractTarget>& targets, const ExtractOptions& options);

}  // namespace haco::rootfs
