#!/usr/bin/env bash
# What a fleet over Slurm costs on top of the fleet itself: for K slices of
# P busybox instances each, on a local cluster of K nodes
# (scripts/slurm/cluster.sh), the time `slurm submit` takes, the time until
# every task has started (Slurm's placement), until the whole fleet serves,
# and from scancel until every slice is gone. One job at a time.
#   scripts/bench-slurm.sh [--slices 1,2,4,8] [--per-slice P] [--haco-fleet BIN]
# Prints one row per K. Needs root, slurm-wlm and munge (scripts/install-deps.sh).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
slices_list=1,2,4,8
per_slice=4
haco_bin=$repo/build/haco-fleet
while [ $# -gt 0 ]; do
  case $1 in
    --slices) slices_list=$2; shift ;;
    --per-slice) per_slice=$2; shift ;;
    --haco-fleet) haco_bin=$(realpath "$2"); shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-slurm: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "bench-slurm: needs root" >&2; exit 1; }
max_nodes=$(tr ',' '\n' <<<"$slices_list" | sort -n | tail -1)

temp=$(mktemp -d /tmp/haco-bench-slurm-XXXXXX)
chmod 0755 "$temp"
root=$temp/run data=$temp/data cdir=$temp/cluster
mkdir -p "$root" "$data" "$temp/rootfs"
image=$repo/build/images/busybox.tar.gz
"$repo/scripts/build-busybox-image.sh" "$image" >/dev/null
export HACO_ROOTFS_BASE=$temp/rootfs HACO_BUSYBOX_IMAGE=$image
haco() { "$haco_bin" --root "$root" --data-root "$data" "$@"; }
job=
cleanup() {
  set +e
  [ -n "$job" ] && scancel "$job" 2>/dev/null && sleep 2
  for slice in "$root"/slurm/*.*; do
    [ -d "$slice" ] && "$haco_bin" --root "$slice" --data-root "$data" down --all --purge --timeout 2 >/dev/null 2>&1
  done
  "$repo/scripts/slurm/cluster.sh" stop --dir "$cdir" >/dev/null 2>&1
  rm -rf "$temp"
}
trap cleanup EXIT
cat > "$temp/epilog" <<EPILOG
#!/bin/sh
export HACO_FLEET_ROOT=$root HACO_FLEET_DATA_ROOT=$data
exec $repo/build/slurm/build-tree/slurm-epilog
EPILOG
chmod 0755 "$temp/epilog"
"$repo/scripts/slurm/cluster.sh" start --dir "$cdir" --nodes "$max_nodes" --epilog "$temp/epilog" >/dev/null
eval "$("$repo/scripts/slurm/cluster.sh" env --dir "$cdir")"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
count_lines() { local n; n=$(grep -c "$1" "$2" 2>/dev/null); echo "${n:-0}"; }

# Times from the start of `slurm submit`: SUBMIT (sbatch answered), BATCH
# (the job's batch step runs on its first node), PLACED (every task has
# started on its node), SERVES (the job's output says the whole fleet
# serves); GONE: from scancel until every slice's state is gone and Slurm
# lists no job.
printf '%-6s  %-9s  %8s  %8s  %8s  %8s  %8s\n' SLICES INSTANCES SUBMIT_S BATCH_S PLACED_S SERVES_S GONE_S
port=30001
for k in ${slices_list//,/ }; do
  n=$((k * per_slice))
  out=$temp/job-$k.out
  t0=$(now)
  job=$(haco slurm submit --ports "$port-$((port + n - 1))" --nodes "$k" --name bench --output "$out" \
          "$repo/tests/supervisor/test-fleet.haco" -- --timeout 60 | sed -n 's/^job \([0-9]*\): .*/\1/p')
  t_submit=$(now)
  t_batch= t_placed= t_serves=
  for _ in $(seq 1 1200); do
    [ -z "$t_batch" ] && [ "$(count_lines '^haco-fleet job: ' "$out")" -ge 1 ] && t_batch=$(now)
    [ -z "$t_placed" ] && [ "$(count_lines ': starting$' "$out")" -ge "$k" ] && t_placed=$(now)
    if grep -q "the whole fleet serves" "$out" 2>/dev/null; then t_serves=$(now); break; fi
    sleep 0.05
  done
  [ -n "$t_serves" ] || { echo "bench-slurm: job $job did not serve" >&2; cat "$out" >&2; exit 1; }
  t1=$(now)
  scancel "$job"
  for _ in $(seq 1 1200); do
    [ -z "$(find "$root/slurm" -mindepth 1 -maxdepth 1 -name '*.*' 2>/dev/null)" ] && ! squeue -h -j "$job" 2>/dev/null | grep -q . && break
    sleep 0.05
  done
  t_gone=$(now)
  printf '%-6s  %-9s  %8s  %8s  %8s  %8s  %8s\n' "$k" "$n" "$(elapsed "$t0" "$t_submit")" \
    "$(elapsed "$t0" "${t_batch:-$t_serves}")" "$(elapsed "$t0" "${t_placed:-$t_serves}")" \
    "$(elapsed "$t0" "$t_serves")" "$(elapsed "$t1" "$t_gone")"
  job=
  port=$((port + n))
done
