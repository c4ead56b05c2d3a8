#!/usr/bin/env bash
# Fleet scale: N busybox instances (templates/busybox-httpd.haco) brought up
# and taken down with `down --purge`, K times in a row, from a shell whose
# soft open-file limit is 1024 (as a login shell's usually is). After each
# cycle nothing of the fleet may be left: no process in its uid ranges, no
# cgroup, no mount under the work directory, no state, no rootfs tree. Prints
# the time of each `up` and `down`, the phases `up` reports, and the
# supervisor's memory while the fleet runs.
#
# Before the cycles, the floor: the same N `busybox httpd` started as plain
# processes (no namespace, cgroup or rootfs; bench_plain_start, built beside
# the haco-fleet binary in bench/) until each accepts, with their own CPU
# time; each `up` is then also given as a multiple of that floor.
#
#   scripts/bench-scale.sh [--instances N] [--cycles K] [--base-port P]
#                          [--rootfs overlay|extract] [--haco-fleet BIN]
#                          [--no-floor]
#
# Defaults: N=1000, K=3, P=20001. Exits non-zero when a cycle fails or leaves
# anything behind. CI runs it with --instances 200 --cycles 1 (ctest
# scale_cycle). Run as root.
set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
readonly REPO=$(dirname "$SCRIPT_DIR")
instances=1000 cycles=3 base_port=20001 strategy=overlay haco_fleet= floor=yes

die() { echo "bench-scale: $*" >&2; exit 1; }
say() { echo "bench-scale: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --instances) instances=$2; shift ;;
    --cycles) cycles=$2; shift ;;
    --base-port) base_port=$2; shift ;;
    --rootfs) strategy=$2; shift ;;
    --haco-fleet) haco_fleet=$2; shift ;;
    --no-floor) floor=no ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || die "run as root"
[[ $instances =~ ^[0-9]+$ && $instances -ge 1 && $instances -le 5000 ]] || die "--instances: 1 to 5000"
[[ $cycles =~ ^[0-9]+$ && $cycles -ge 1 && $cycles -le 100 ]] || die "--cycles: 1 to 100"
last_port=$((base_port + instances - 1))
[ "$last_port" -le 65535 ] || die "ports $base_port-$last_port do not fit"
if [ -z "$haco_fleet" ]; then
  haco_fleet=$REPO/build/haco-fleet
  [ -x "$haco_fleet" ] || die "no $haco_fleet (build it, or pass --haco-fleet PATH)"
fi

image=$REPO/build/images/busybox.tar.gz
"$SCRIPT_DIR/build-busybox-image.sh" "$image" >/dev/null
readonly work=$(mktemp -d /tmp/haco-test-scale.XXXXXX)
chmod 0755 "$work"  # the containers' root users reach their rootfs in it
readonly fleet_name=scale$$
fleet() {
  HACO_BUSYBOX_IMAGE=$image HACO_ROOTFS_BASE=$work/rootfs \
    "$haco_fleet" --root "$work/state" --data-root "$work/data" "$@"
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  fleet down --name "$fleet_name" --purge --timeout 1 >/dev/null 2>&1 || true
  local m
  for m in $(awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# What the fleet left; one line each.
leftovers() {
  local first_uid=$((base_port * 100)) last_uid=$((last_port * 100 + 99))
  ps -e -o uid=,pid= | awk -v a="$first_uid" -v b="$last_uid" '$1 >= a && $1 <= b { print "process " $2 " (uid " $1 ")" }'
  awk -v w="$work" 'index($5, w) == 1 { print "mount " $5 }' /proc/self/mountinfo
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | while read -r m; do
    find "$m" -maxdepth 8 -type d -name "$fleet_name*" -prune -printf 'cgroup %p\n' 2>/dev/null
    find "$m" -maxdepth 8 -type d -name "haco-fleet-$fleet_name.service" -prune -printf 'cgroup %p\n' 2>/dev/null
  done
  [ ! -e "$work/state/$fleet_name" ] || echo "state $work/state/$fleet_name"
  if [ -d "$work/rootfs" ] && [ -n "$(ls -A "$work/rootfs")" ]; then echo "rootfs trees in $work/rootfs"; fi
}

say "$instances instances, $cycles cycle(s), --rootfs $strategy, ports $base_port-$last_port, $(nproc) cpus"

# The floor: the image's own busybox, started plainly on the same ports.
floor_s=
if [ "$floor" = yes ]; then
  plain_start=$(dirname "$haco_fleet")/bench/bench_plain_start
  [ -x "$plain_start" ] || die "no $plain_start (build the benchmarks, or pass --no-floor)"
  mkdir "$work/plain"
  tar -xzf "$image" -C "$work/plain" ./bin/busybox
  floor_out=$(ulimit -Sn 1024 && HACO_PLAIN_BUSYBOX=$work/plain/bin/busybox HACO_PLAIN_INSTANCES=$instances \
                HACO_PLAIN_BASE_PORT=$base_port "$plain_start" --benchmark_format=json) || die "the floor run failed"
  read -r floor_s floor_cpu < <(echo "$floor_out" | jq -r '.benchmarks[0] |
      if .error_occurred then "error \(.error_message)" else "\(.real_time / 1000) \(.server_cpu_ms_each)" end')
  [ "$floor_s" != error ] || die "the floor run failed: $floor_cpu"
  floor_s=$(printf '%.2f' "$floor_s")
  say "floor: $instances plain busybox httpd accepting after $floor_s s, $(printf '%.1f' "$floor_cpu") ms of CPU each"
fi
results=()
for ((cycle = 1; cycle <= cycles; cycle++)); do
  t0=$(now)
  if ! (ulimit -Sn 1024 && fleet up --name "$fleet_name" --rootfs "$strategy" --timeout 600 \
          --ports "$base_port-$last_port" "$REPO/templates/busybox-httpd.haco") >"$work/up-$cycle.log" 2>&1; then
    tail -20 "$work/up-$cycle.log" >&2
    die "cycle $cycle: up failed"
  fi
  t1=$(now)
  running=$(fleet ps --json --name "$fleet_name" 2>/dev/null | jq '[.fleets[0].instances[] | select(.state == "running")] | length')
  [ "$running" = "$instances" ] || die "cycle $cycle: $running of $instances instances running"
  supervisor=$(fleet ps --json --name "$fleet_name" 2>/dev/null | jq -r '.fleets[0].supervisor.pid')
  read -r rss pss < <(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r + 0, p + 0 }' \
                      "/proc/$supervisor/smaps_rollup" 2>/dev/null || echo "0 0")
  fds=$(ls "/proc/$supervisor/fd" 2>/dev/null | wc -l)
  t2=$(now)
  fleet down --name "$fleet_name" --purge >"$work/down-$cycle.log" 2>&1 || { cat "$work/down-$cycle.log" >&2; die "cycle $cycle: down failed"; }
  t3=$(now)
  left=$(leftovers)
  # The summary table of `up`: phase, count, failed, p50, p95, p99, max.
  phases=$(awk '$1 ~ /^(rootfs|clone_to_exec|exec_to_ready)$/ && NF == 7 && $2 ~ /^[0-9]+$/ {
                  printf "%s p50 %s ms; ", $1, $4 }' "$work/up-$cycle.log")
  up_s=$(elapsed "$t0" "$t1") down_s=$(elapsed "$t2" "$t3")
  results+=("$(printf '%5d %10s %10s %10s %10s %8s  %s' "$cycle" "$up_s" "$down_s" \
                 "$((rss / 1024)) MiB" "$((pss / 1024)) MiB" "$fds" "$phases")")
  ratio=
  [ -z "$floor_s" ] || ratio=" ($(awk -v u="$up_s" -v f="$floor_s" 'BEGIN { printf "%.1f", u / f }')x the floor)"
  say "cycle $cycle: up $up_s s$ratio, down --purge $down_s s, supervisor RSS $((rss / 1024)) MiB, $fds fds"
  if [ -n "$left" ]; then
    echo "$left" | head -20 >&2
    die "cycle $cycle left $(echo "$left" | wc -l) thing(s) behind"
  fi
done

printf '\n%5s %10s %10s %10s %10s %8s  %s\n' cycle "up s" "down s" "sup RSS" "sup PSS" "sup fds" "phases of up"
printf '%s\n' "${results[@]}"
[ -z "$floor_s" ] || echo "floor: $instances plain busybox httpd (no isolation) accepting after $floor_s s"
echo "nothing left after any cycle"
