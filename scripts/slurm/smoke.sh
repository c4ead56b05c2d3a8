#!/usr/bin/env bash
# Smoke check of scripts/slurm/cluster.sh, run by hand as root (on the host or
# in the guest): start two nodes, run steps and jobs on them, crash a node and
# bring it back, stop, and prove nothing of the cluster is left.
#   scripts/slurm/smoke.sh [DIR (default /tmp/haco-slurm-smoke)]
# Env: SMOKE_SLOW=N multiplies the waits (the TCG guest is slow).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster=$here/cluster.sh
dir=${1:-/tmp/haco-slurm-smoke}
slow=${SMOKE_SLOW:-1}
timeout_s=10

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }
# Polls CMD every 0.5 s for up to S seconds.
wait_for() {  # S WHAT CMD...
  local s=$1 what=$2 end; shift 2
  end=$((SECONDS + s))
  while [ $SECONDS -le $end ]; do "$@" && return 0; sleep 0.5; done
  fail "$what not within ${s}s"
}
trap '[ $? -eq 0 ] || "$cluster" stop --dir "$dir" --keep-logs >&2 || true' EXIT

step "start (2 nodes, SlurmdTimeout=${timeout_s}s)"
t0=$(date +%s%N)
"$cluster" start --dir "$dir" --nodes 2 --slurmd-timeout $timeout_s --wait $((60 * slow))
echo "start took $(elapsed "$t0") s"
eval "$("$cluster" env --dir "$dir")"
sinfo -N
net_ns=$(readlink "/proc/$(cat "$dir/ns/node1.pid")/ns/net")
net_index=$(sed -n 's/^net_index=//p' "$dir/cluster.state")
cg_name=haco-slurm$net_index

step "srun -N2 -l hostname"
out=$(srun -N2 -l hostname | sort)
echo "$out"
[ "$out" = $'0: node1\n1: node2' ] || fail "hostnames: $out"

step "srun -N2 -l cat /proc/self/cgroup"
srun -N2 -l cat /proc/self/cgroup | sort -n

step "exec node2: the node's own view"
"$cluster" exec --dir "$dir" node2 sh -c 'hostname; ip -br addr show eth0; cat /proc/self/cgroup | head -3'

job_cgroups() {  # JOB NODE: the host's cgroup directories of JOB on NODE
  find /sys/fs/cgroup -type d \( -path "*/$cg_name/$2/*" -o -path "*/$cg_name-$2.service/cg/*" \) \
    -name "job_$1" 2>/dev/null
}
running() { [ "$(squeue -h -j "$1" -o %T 2>/dev/null)" = RUNNING ]; }
steps_on_both() { [ -n "$(job_cgroups "$1" node1)" ] && [ -n "$(job_cgroups "$1" node2)" ]; }

step "sbatch over both nodes, then scancel"
job=$(sbatch --parsable -N2 -o /dev/null --wrap 'srun -N2 sleep 300')
wait_for $((20 * slow)) "job $job running with steps on both nodes" eval 'running $job && steps_on_both $job'
echo "job $job cgroups on the host:"
job_cgroups "$job" node1
job_cgroups "$job" node2
[ "$(job_cgroups "$job" node1)" != "$(job_cgroups "$job" node2)" ] || fail "node1 and node2 share job cgroups"
scancel "$job"
no_job_left() {
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] &&
    [ -z "$(job_cgroups "$job" node1)" ] && [ -z "$(job_cgroups "$job" node2)" ]
}
wait_for $((40 * slow)) "job $job gone from the queue and from both nodes' cgroups" no_job_left
scontrol show job "$job" | grep -o 'JobState=[A-Z_]*'

step "kill-node node2 in a running job"
job=$(sbatch --parsable -N2 -o /dev/null --wrap 'srun -N2 sleep 300')
wait_for $((20 * slow)) "job $job running on both nodes" eval 'running $job && steps_on_both $job'
t0=$(date +%s%N)
"$cluster" kill-node --dir "$dir" node2
node2_failed() {
  scontrol show job "$job" | grep -q 'JobState=NODE_FAIL' ||
    sinfo -h -n node2 -o %t | grep -q down
}
wait_for $((timeout_s + 60 * slow)) "NODE_FAIL of job $job or node2 down" node2_failed
echo "failure seen after $(elapsed "$t0") s:" \
  "$(scontrol show job "$job" | grep -o 'JobState=[A-Z_]*')" "node2 $(sinfo -h -n node2 -o %t)"
scancel "$job" 2>/dev/null || true
"$cluster" restart-node --dir "$dir" node2
node2_idle() { [ "$(sinfo -h -n node2 -o %t)" = idle ]; }
wait_for $((60 * slow)) "node2 idle again" node2_idle
sinfo -N
node_fail() { scontrol show job "$job" | grep -q 'JobState=NODE_FAIL'; }
wait_for $((30 * slow)) "job $job ending as NODE_FAIL" node_fail
echo "job $job: $(scontrol show job "$job" | grep -o 'JobState=[A-Z_]*')"

step "stop"
t0=$(date +%s%N)
"$cluster" stop --dir "$dir"
echo "stop took $(elapsed "$t0") s"

step "nothing left"
[ ! -e "$dir" ] || fail "$dir still exists"
left=$(ps -eo pid=,args= | grep -F -- "$dir" | grep -v -e grep -e smoke.sh || true)
[ -z "$left" ] || fail "processes left: $left"
for p in /proc/[0-9]*; do
  [ "$(readlink "$p/ns/net" 2>/dev/null)" != "$net_ns" ] || fail "${p#/proc/} is in node1's netns"
done
! ip -br link | grep -e "hslurm$net_index\b" -e "hs$net_index-" || fail "links left"
cgs=$(find /sys/fs/cgroup \( -name "$cg_name" -o -name "$cg_name-*" \) 2>/dev/null)
[ -z "$cgs" ] || fail "cgroups left: $cgs"
! grep -F -e "$dir" /proc/self/mountinfo || fail "mounts left"
echo "smoke: OK"
