#!/usr/bin/env bash
# Runs inside the Debian 12 guest (started by scripts/vm/guest-suite.sh):
# says what the guest is, checks that BUILD_DIR's programs find their
# libraries, then runs with ctest the vm tests and the container tests
# (integration, without the e2e fleet of 100), when the host shared it the
# seed's definition on three ports, and the Slurm cluster test. Exits
# non-zero when anything failed. ctest's logs are kept in BUILD_DIR/vm-guest/.
#   scripts/vm/in-guest-suite.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: in-guest-suite.sh BUILD_DIR}
if [ -z "${HACO_VM_GUEST:-}" ]; then
  echo "in-guest-suite: runs in the guest only; on the host use scripts/vm/guest-suite.sh" >&2
  exit 2
fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

echo "== guest: kernel $(uname -r), $(systemctl --version | head -1 | cut -d' ' -f1-2)," \
     "/sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup), $(nproc) cpus, $(free -m | awk '/^Mem/ { print $2 }') MiB"
for dir in /tmp /var/tmp /var/lib; do echo "== $dir is on $(stat -fc %T "$dir") ($(findmnt -no SOURCE -T "$dir"))"; done

failed=()
# Every program of the build tree must find its libraries in the guest.
missing=$(find "$build" -path '*/CMakeFiles' -prune -o -type f -perm -u+x -print \
          | while read -r f; do ldd "$f" 2>/dev/null | grep 'not found' | sed "s|^|$f: |"; done)
if [ -n "$missing" ]; then
  echo "== libraries missing in the guest (add their packages to scripts/vm/guest/packages):"
  echo "$missing"
  failed+=(libraries)
fi

# ctest's own files stay on the guest's disk: the host's ctest, which runs
# this suite, writes the same ones in the shared build tree.
mkdir -p "$build/Testing" "$build/vm-guest"
mount -t tmpfs -o size=64m haco-vm-ctest "$build/Testing"
cd "$build" || exit 2

# Each ctest runs in a transient service of its own with Delegate=yes, as
# haco-vm-run.service is, so that what one suite leaves in its cgroup cannot
# change the next one's results.
run_ctest() {
  local name=$1 started rc
  shift
  echo "== ctest $* ($name)"
  started=$(now)
  systemd-run --quiet --wait --pipe --collect -p Delegate=yes --working-directory="$build" \
    -E HACO_VM_GUEST=1 -E HOME=/root -E LANG=C.UTF-8 \
    ctest --output-on-failure --timeout 600 "$@"
  rc=$?
  cp Testing/Temporary/LastTest.log "$build/vm-guest/LastTest-$name.log" 2>/dev/null
  echo "== $name: exit status $rc after $(secs "$started" "$(now)") s"
  [ "$rc" = 0 ] || failed+=("$name")
}
# Labels are regular expressions: anchored, so that vm-host is not selected.
run_ctest vm -L '^vm$'
# The two log flood tests check what lands in a file, the same on any host,
# and take a minute under TCG: left to the host suite (the log writer's
# place in the unit's cgroup and its life after a supervisor SIGKILL are
# checked here by the other LogWriterTest cases and tests/vm).
# The Slurm cluster test (label slurm) runs on its own below.
run_ctest containers -L '^integration$' -LE '^(e2e|scale|slurm)$' \
  -E '^LogWriterTest\.(AFloodPastTheCapKeepsTheNewestLinesWholeAndContiguous|NothingIsLostBelowTheCap)$'
# The seed's phpinfo definition on three ports (Apache + PHP), when the host
# shared it (scripts/vm/guest-suite.sh): the e2e test reads it beside the
# source tree.
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
if [ -f "$source_dir/../shared/seed/phpinfo-test.haco" ]; then
  run_ctest seed -L '^e2e$' -R 'SeedDefinitionRunsUnchanged'
else
  echo "== seed: not shared into the guest, not run"
fi

# The Slurm cluster test (two slurmd nodes under systemd, docs/multi-host.md)
# with Debian's Slurm packages, which the host downloaded into
# BUILD_DIR/vm-slurm-debs (scripts/slurm/guest-debs.sh): installed here, on
# the guest's throw-away disk, with their own services stopped (the test
# starts its own munged, slurmctld and slurmd).
if compgen -G "$build/vm-slurm-debs/*.deb" >/dev/null; then
  if dpkg -i "$build"/vm-slurm-debs/*.deb >"$build/vm-guest/dpkg-slurm.log" 2>&1; then
    systemctl disable --now --quiet munge slurmd slurmctld 2>/dev/null
    run_ctest slurm -L '^slurm$'
  else
    echo "== slurm: installing the packages failed (dpkg's output in $build/vm-guest/dpkg-slurm.log):"
    tail -5 "$build/vm-guest/dpkg-slurm.log"
    failed+=(slurm)
  fi
else
  echo "== slurm: no packages in $build/vm-slurm-debs (scripts/vm/guest-suite.sh downloads them)"
  failed+=(slurm)
fi

cd /
umount "$build/Testing"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== failed in the guest: ${failed[*]}"
  exit 1
fi
echo "== everything passed in the guest"
