#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite with ctest.
# Run as root on a fresh machine: integration tests start real containers.
#   scripts/test.sh              everything (unit + integration)
#   scripts/test.sh -L unit      ctest arguments are passed through
#   HACO_SANITIZE=1 scripts/test.sh   build with ASan+UBSan in build-asan/
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"

if [ "${HACO_SANITIZE:-0}" = 1 ]; then
  build_dir=$top/build-asan
  HACO_BUILD_TYPE=Debug "$top/scripts/build.sh" "$build_dir" -DHACO_SANITIZE=ON
else
  build_dir=$top/build
  "$top/scripts/build.sh" "$build_dir"
fi

cd "$build_dir"
ctest --output-on-failure --timeout 900 "$@"
