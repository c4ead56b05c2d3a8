// OCI images as a definition names them (docs/images.md, "OCI layouts and
// docker archives"): an OCI image layout directory or a `docker save` /
// `podman save` archive, with an optional tag or digest. Reading one gives
// its layers (bottom first, each with the digests it must match) and the
// parts of its config that become the instance's defaults. Every manifest
// and config read is checked against its digest here; the layer blobs are
// checked when they are read (src/rootfs/oci_layers.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "haco/spec.hpp"

namespace haco::oci {

// What a definition's `b.image` names.
//   DIR              an OCI layout; its only manifest, else the one tagged "latest"
//   DIR:TAG          the manifest whose org.opencontainers.image.ref.name is TAG
//   DIR@sha256:HEX   the manifest with that digest
//   FILE             a docker archive; its only image
//   FILE:REPO[:TAG]  the image tagged REPO:TAG (TAG defaults to latest)
// The longest prefix that exists on the host is the path (a layout named
// /srv/images/php:8.2 is the directory /srv/images/php, tag 8.2, unless a
// directory "php:8.2" exists).
struct Reference {
  std::string path;
  bool docker_archive = false;  // path is a file, not a directory
  std::string tag;              // layout: ref name; archive: REPO:TAG
  std::string digest;           // "sha256:HEX" (layouts only)
  bool operator==(const Reference&) const = default;
};
// Throws InputError when no prefix of `text` exists or the rest is malformed.
Reference parse_reference(const std::string& text);

// The parts of an image's config that an instance takes when its definition
// does not set them.
struct ImageConfig {
  std::vector<std::string> entrypoint, cmd;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string working_dir;
  std::string user;              // "name", "uid", "uid:gid", "name:group"
  bool operator==(const ImageConfig&) const = default;
};

struct Layer {
  std::string digest;      // "sha256:HEX" of the blob as stored (layouts; empty in archives)
  std::string diff_id;     // "sha256:HEX" of the uncompressed tar (the config's rootfs.diff_ids)
  std::string media_type;  // layouts only
  std::string blob;        // layout: the blob's path; archive: the member's name in the archive
  bool operator==(const Layer&) const = default;
};

struct Image {
  Reference reference;
  std::string id;  // layout: the manifest's digest; archive: the config's
  ImageConfig config;
  std::vector<Layer> layers;  // bottom first
};

// Reads and checks the image named by `reference` (parse_reference's forms).
// Throws InputError naming the file and the digests on any mismatch.
Image read_image(const std::string& reference);

// The parsers, on the JSON documents' text (`what` names the document in
// errors). select_manifest returns the chosen descriptor's digest.
std::string select_manifest(const std::string& index_json, const Reference& ref, const std::string& what);
struct Manifest {
  std::string config_digest;
  std::vector<Layer> layers;  // digest and media_type filled
};
Manifest parse_manifest(const std::string& manifest_json, const std::string& what);
// The config's defaults and its rootfs.diff_ids.
ImageConfig parse_config(const std::string& config_json, const std::string& what,
                         std::vector<std::string>* diff_ids = nullptr);
// manifest.json of a docker archive: the chosen image's config and layer
// member names.
struct ArchiveManifest {
  std::string config;
  std::vector<std::string> layers;
};
ArchiveManifest parse_archive_manifest(const std::string& manifest_json, const Reference& ref,
                                       const std::string& what);

// "sha256:" followed by 64 lowercase hex digits; InputError naming `what` otherwise.
void check_digest(const std::string& digest, const std::string& what);

// The instance's command, environment and working directory from the image
// where the definition did not set them (the definition's environment wins
// per key; "/" when neither sets a working directory). Throws InputError
// when neither sets a command.
void apply_image_config(ContainerSpec& spec, const ImageConfig& config);

}  // namespace haco::oci
