#!/usr/bin/env bash
# Installs what is needed, builds, and runs the test suite with ctest on
# this host, then in a Debian 12 guest with systemd and only cgroup v2
# (ctest -L vm-host: the vm tests, the container tests and the seed's
# definition under QEMU; docs/vm.md).
# Run as root on a fresh machine: integration tests start real containers.
#   scripts/test.sh                   the host suite, then the guest suite
#   HACO_SKIP_VM=1 scripts/test.sh    the host suite only
#   scripts/test.sh -L unit      ctest arguments are passed through; only
#                                that ctest runs
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
if [ $# -gt 0 ]; then
  exec ctest --output-on-failure --timeout 900 "$@"
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

host_status=0
ctest --output-on-failure --timeout 900 -LE '^vm-host$' || host_status=$?
if [ "${HACO_SKIP_VM:-0}" = 1 ]; then
  echo "test: the guest suite (ctest -L vm-host) was not run (HACO_SKIP_VM=1)"
  exit "$host_status"
fi

started=$(now)
"$top/scripts/vm/build-guest.sh" >/dev/null
image_ready=$(now)
echo "test: guest image ready in $(secs "$started" "$image_ready") s"
guest_status=0
ctest --output-on-failure -L '^vm-host$' || guest_status=$?
echo "test: guest suite took $(secs "$image_ready" "$(now)") s:"
grep -E '^(== [a-z]+: exit status|guest-suite:|run-in-guest:)' Testing/Temporary/LastTest.log | sed 's/^/  /' || true

[ "$host_status" = 0 ] && [ "$guest_status" = 0 ]
