#!/usr/bin/env bash
# The guest suite (ctest's vm_guest_suite, label vm-host): boots the Debian 12
# guest (systemd, cgroup v2 only) with this repository and BUILD_DIR shared at
# the same paths and runs in it, with ctest, the vm tests, the container
# tests (-L integration, without the 100-container e2e test), the seed's
# own definition on three ports and the Slurm cluster test. Fails when
# anything fails in the guest; the guest's ctest output is streamed here.
#   scripts/vm/guest-suite.sh [BUILD_DIR]      (default: build/)
# Env: HACO_VM_SUITE_TIMEOUT (seconds, default 1800) and those of
# run-in-guest.sh. See docs/vm.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)

if [ -n "${HACO_VM_GUEST:-}" ]; then
  echo "guest-suite: this is the guest already; run scripts/vm/in-guest-suite.sh" >&2
  exit 1
fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

start=$(now)
"$here/build-guest.sh" >/dev/null
guest_built=$(now)

# The test images, built here: the busybox image in the shared build tree,
# the php image copied onto the guest's disk where the tests look for it.
"$repo/scripts/build-busybox-image.sh" "$build/images/busybox.tar.gz" >/dev/null
# The OCI layout and docker archive of oci_fleet_tests: the guest has no
# umoci or skopeo; the tests find them built in the shared tree.
"$repo/scripts/build-busybox-oci.sh" "$build/images/oci" "$build/images/busybox.tar.gz" >/dev/null
# Debian's Slurm packages for the Slurm cluster test, which the guest's
# image does not have, into the shared build tree.
"$repo/scripts/slurm/guest-debs.sh" "$build/vm-slurm-debs" >/dev/null
php_image=$("$repo/scripts/build-php-image.sh" | tail -1)
copies=(--copy "$php_image=$php_image" --copy "$php_image.key=$php_image.key")
shares=(--repo)
case $build/ in "$repo"/*) ;; *) shares+=(--share "$build") ;; esac
# The seed's own definition (../shared/seed beside the repository, where the
# e2e test reads it) and the image it names, at the path it names.
seed=$repo/../shared/seed
if [ -f "$seed/phpinfo-test.haco" ]; then
  seed_image=$("$repo/scripts/build-php-image.sh" --seed-layout | tail -1)
  copies+=(--copy "$seed_image=$seed_image" --copy "$seed_image.key=$seed_image.key")
  shares+=(--share "$(cd "$seed" && pwd)")
else
  echo "guest-suite: no $seed/phpinfo-test.haco: the seed's definition is not run in the guest"
fi
images_built=$(now)

status=0
"$here/run-in-guest.sh" --timeout "${HACO_VM_SUITE_TIMEOUT:-1800}" "${shares[@]}" "${copies[@]}" \
  -- bash "$here/in-guest-suite.sh" "$build" || status=$?
finished=$(now)

echo "guest-suite: guest image $(secs "$start" "$guest_built") s, test images $(secs "$guest_built" "$images_built") s," \
     "guest run $(secs "$images_built" "$finished") s; exit status $status"
exit "$status"
