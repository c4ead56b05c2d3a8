#!/usr/bin/env bash
# Builds the Debian package haco-fleet_VERSION_ARCH.deb with CPack: a Release
# build installed under /usr (build-deb/ beside the sources, or BUILD_DIR),
# with the man page, and Depends computed by dpkg-shlibdeps.
#   scripts/package.sh [BUILD_DIR [cmake args...]]
# Prints the path of the .deb on its last line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$top/build-deb}
shift || true

die() { echo "package: $*" >&2; exit 1; }
for tool in help2man:help2man dpkg-shlibdeps:dpkg-dev file:file dpkg-deb:dpkg; do
  command -v "${tool%%:*}" >/dev/null ||
    die "${tool%%:*} is missing (Debian package ${tool#*:}): run scripts/install-deps.sh"
done

cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DHACO_BUILD_TESTS=OFF -DHACO_BUILD_BENCH=OFF -DHACO_MAN_PAGE=ON "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
rm -f "$build_dir"/haco-fleet_*.deb
(cd "$build_dir" && cpack -G DEB >/dev/null)
deb=$(ls "$build_dir"/haco-fleet_*.deb)
dpkg-deb --field "$deb" Package Version Architecture Depends Recommends >&2
echo "$deb"
