#!/usr/bin/env bash
# Builds the OCI test images from the busybox tarball (scripts/build-busybox-image.sh):
#   scripts/build-busybox-oci.sh OUT_DIR [BUSYBOX_TARBALL]
# OUT_DIR/layout       an OCI image layout with two images sharing the base layer:
#   :v2     busybox + a layer that deletes www/index.html (a whiteout), adds
#           etc/oci-added, and makes var/www opaque (only new.html in it);
#           config: Entrypoint /bin/sleep, Cmd 1000, Env OCI_ENV=from-image,
#           WorkingDir /www, User www (uid 33)
#   :other  busybox + a layer adding etc/other; config: Entrypoint /bin/sleep, Cmd 1001
# OUT_DIR/busybox-v2.tar  the :v2 image as a docker archive (busybox:v2)
# Needs umoci and skopeo (scripts/install-deps.sh). Prints OUT_DIR.
set -euo pipefail

out="${1:?usage: build-busybox-oci.sh OUT_DIR [BUSYBOX_TARBALL]}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tarball="${2:-$out/busybox.tar.gz}"

# Built already (by this script since it last changed): the tools are not
# needed, so a host without them (the test guest) uses images built for it.
if [ -s "$out/busybox-v2.tar" ] && [ "$out/busybox-v2.tar" -nt "${BASH_SOURCE[0]}" ] && [ -d "$out/layout" ]; then
  echo "$out"
  exit 0
fi
for tool in umoci skopeo; do
  command -v "$tool" >/dev/null || { echo "build-busybox-oci: $tool missing; run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$out"
[ -s "$tarball" ] || "$here/build-busybox-image.sh" "$tarball" >/dev/null
stage="$(mktemp -d "${TMPDIR:-/tmp}/haco-busybox-oci.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
rm -rf "$out/layout" "$out/busybox-v2.tar"

# The base layer: the busybox tree as it is (umoci takes uncompressed layers).
gzip -dc "$tarball" > "$stage/base.tar"

# The upper layer of :v2, written by hand so that it holds exactly the
# whiteout names the OCI spec defines.
mkdir -p "$stage/v2/www" "$stage/v2/etc" "$stage/v2/var/www"
: > "$stage/v2/www/.wh.index.html"
echo "added by the upper layer" > "$stage/v2/etc/oci-added"
: > "$stage/v2/var/www/.wh..wh..opq"
echo "<p>only file left in an opaque directory</p>" > "$stage/v2/var/www/new.html"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$stage/v2" -cf "$stage/v2.tar" \
  ./www ./etc ./var

mkdir -p "$stage/other/etc"
echo "the other image" > "$stage/other/etc/other"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$stage/other" -cf "$stage/other.tar" ./etc

layout="$out/layout"
umoci init --layout "$layout"
umoci new --image "$layout:base"
umoci raw add-layer --image "$layout:base" "$stage/base.tar"
umoci raw add-layer --image "$layout:base" --tag v2 "$stage/v2.tar"
umoci config --image "$layout:v2" --config.entrypoint /bin/sleep --config.cmd 1000 \
  --config.env OCI_ENV=from-image --config.env PATH=/bin:/sbin:/usr/bin \
  --config.workingdir /www --config.user www
umoci raw add-layer --image "$layout:base" --tag other "$stage/other.tar"
umoci config --image "$layout:other" --config.entrypoint /bin/sleep --config.cmd 1001
umoci rm --image "$layout:base"
umoci gc --layout "$layout"

skopeo --insecure-policy copy -q "oci:$layout:v2" "docker-archive:$out/busybox-v2.tar:busybox:v2"
echo "$out"
