#!/usr/bin/env bash
# Fails when the test suite left anything behind: run by ctest after every
# test that starts containers (test leak_check, fixture haco_leak_check).
# Looks for the tests' temporary trees and mounts under them, haco-fleet
# cgroups, systemd units and supervisor, spawner or log writer processes of
# fleets that have no state in the default state root (the tests use
# temporary roots, so a fleet an operator runs with the defaults is not
# counted).
#   scripts/leak-check.sh [BUILD_DIR]
set -uo pipefail
build=${1:-}
default_state=/run/haco-fleet
leaks=()

# The tests' temporary trees.
patterns=(/tmp/haco-test-* /tmp/haco-e2e-* /tmp/haco-rootfs-test-* /tmp/haco-runtime-test.*
          /tmp/haco-private-base.* /var/tmp/haco-vm-test-* /var/lib/haconiwa/haconiwa-test-*)
[ -n "$build" ] && patterns+=("$build"/observe-trace-*)
for path in "${patterns[@]}"; do
  [ -e "$path" ] && leaks+=("tree $path")
done

# Mounts under those trees (mountinfo field 5 is the mount point).
while read -r mount_point; do
  case $mount_point in
    /tmp/haco-test-*|/tmp/haco-e2e-*|/tmp/haco-rootfs-test-*|/tmp/haco-runtime-test.*|/tmp/haco-private-base.*|\
    /var/tmp/haco-vm-test-*|/var/lib/haconiwa/haconiwa-test-*)
      leaks+=("mount $mount_point") ;;
  esac
done < <(awk '{ print $5 }' /proc/self/mountinfo)

# A fleet is the operator's when its state is in the default root.
operators_fleet() { [ -e "$default_state/$1/fleet.json" ]; }

# cgroups: <hierarchy>/.../haco-fleet/<fleet> (v1, v2 without systemd) and
# the benchmarks' and tests' own.
while read -r mount_point; do
  while read -r dir; do
    fleet=$(basename "$dir")
    operators_fleet "$fleet" || leaks+=("cgroup $dir")
  done < <(find "$mount_point" -mindepth 2 -maxdepth 8 -type d -path '*/haco-fleet/*' -prune 2>/dev/null)
  while read -r dir; do
    leaks+=("cgroup $dir")
  done < <(find "$mount_point" -maxdepth 8 -type d \( -name 'haco-bench-*' -o -name 'haco-sup-elsewhere-*' \) \
             -prune 2>/dev/null)
done < <(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)

# Registry entries: claims of a fleet that has no state (an `up` that died
# before its supervisor wrote fleet.json, or a `down` that dropped the state
# but not the claims).
for claims in "$default_state"/*/claims.json; do
  [ -e "$claims" ] || continue
  fleet=$(basename "$(dirname "$claims")")
  operators_fleet "$fleet" || leaks+=("registry entry $claims")
done

# systemd units of fleets (transient haco-fleet-<fleet>.service).
if [ -d /run/systemd/system ]; then
  while read -r unit _; do
    fleet=${unit#haco-fleet-}
    fleet=${fleet%.service}
    operators_fleet "$fleet" || leaks+=("unit $unit")
  done < <(systemctl list-units --all --plain --no-legend 'haco-fleet-*.service' 2>/dev/null)
fi

# Supervisors, spawners and log writers ("haco-fleet: supervisor FLEET",
# "haco-fleet: spawner FLEET N", "haco-fleet: logs FLEET").
for cmdline in /proc/[0-9]*/cmdline; do
  first=
  { read -r -d '' first <"$cmdline"; } 2>/dev/null
  case $first in
    "haco-fleet: supervisor "*|"haco-fleet: spawner "*|"haco-fleet: logs "*)
      fleet=$(awk '{ print $3 }' <<<"$first")
      pid=${cmdline#/proc/}
      pid=${pid%/cmdline}
      operators_fleet "$fleet" || leaks+=("process $pid: $first") ;;
  esac
done

if [ ${#leaks[@]} -gt 0 ]; then
  echo "leak-check: the tests left ${#leaks[@]} thing(s) behind:"
  printf '  %s\n' "${leaks[@]}"
  exit 1
fi
echo "leak-check: nothing left (trees, mounts, cgroups, units, registry entries, processes)"
