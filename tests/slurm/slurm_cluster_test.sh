#!/usr/bin/env bash
# A fleet over a real Slurm cluster on this machine (scripts/slurm/cluster.sh:
# slurmctld and two slurmd nodes, each in network, UTS, mount and cgroup
# namespaces of its own): `slurm submit` over both nodes, every port served
# from exactly one node (checked from inside each node's network namespace),
# the slices in `slurm status` and `ps`, the instances in their task's
# cgroup; `scancel` leaves nothing on either node; a node killed in the
# middle of a run (its slurmd and every process of it, SIGKILL) is reported
# by Slurm, and the Epilog on the other node and the next job on the killed
# one leave nothing behind; so does the Epilog after a task's SIGKILL.
#   tests/slurm/slurm_cluster_test.sh BUILD_DIR
set -uo pipefail
build=$(realpath "$1")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
haco_bin=$build/haco-fleet
cluster=$repo/scripts/slurm/cluster.sh
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }
test_started=$(date +%s.%N)
step() { echo "== [$(since "$test_started") s] $*"; }

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
for tool in slurmctld slurmd munged sbatch scancel scontrol curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

temp=$(mktemp -d /tmp/haco-test-slurm-XXXXXX)
chmod 0755 "$temp"
root=$temp/run data=$temp/data rootfs_base=$temp/rootfs cdir=$temp/cluster
mkdir -p "$root" "$data" "$rootfs_base"
image=$build/images/busybox.tar.gz
"$repo/scripts/build-busybox-image.sh" "$image" >/dev/null || { echo "FAIL: building the busybox image" >&2; exit 1; }
export HACO_ROOTFS_BASE=$rootfs_base HACO_BUSYBOX_IMAGE=$image
definition=$repo/tests/supervisor/test-fleet.haco
# Ports from the pid, as the fleet tests pick theirs (host ids port*100 must fit).
base=$((20000 + ($$ % 200) * 50))
haco() { "$haco_bin" --root "$root" --data-root "$data" "$@"; }

# Slurm's Epilog: the shipped script (as configured for the build tree) with
# this test's roots.
cat > "$temp/epilog" <<EPILOG
#!/bin/sh
export HACO_FLEET_ROOT=$root HACO_FLEET_DATA_ROOT=$data
exec $build/slurm/build-tree/slurm-epilog
EPILOG
chmod 0755 "$temp/epilog"

jobs_submitted=()
cleanup() {
  set +e
  # While the cluster runs (scancel retries for minutes without a controller).
  if [ -f "$cdir/slurm.conf" ]; then
    for j in "${jobs_submitted[@]}"; do timeout 10 scancel "$j" 2>/dev/null; done
    sleep 1
  fi
  # Whatever a failed check left: every slice and fleet under the roots.
  for slice in "$root"/slurm/*.*; do
    [ -d "$slice" ] || continue
    "$haco_bin" --root "$slice" --data-root "$data" down --all --purge --timeout 2 >/dev/null 2>&1
  done
  haco down --all --purge --timeout 2 >/dev/null 2>&1
  "$cluster" stop --dir "$cdir" >/dev/null 2>&1
  rm -rf "$temp"
}
trap cleanup EXIT

step "starting the cluster"
started=$(date +%s.%N)
"$cluster" start --dir "$cdir" --nodes 2 --epilog "$temp/epilog" --slurmd-timeout 10 || { echo "FAIL: cluster start" >&2; exit 1; }
echo "cluster up in $(since $started) s"
eval "$("$cluster" env --dir "$cdir")"

# [fleet_name=F] submit COUNT FIRST_PORT [slurm submit options...]: prints the job id.
submit() {
  local count=$1 first=$2; shift 2
  local out
  out=$(haco slurm submit --ports "$first-$((first + count - 1))" --nodes 2 --name "${fleet_name:-sl}" \
        --output "$temp/job-%j.out" "$@" "$definition" -- --timeout 60 --restart on-failure) ||
    { echo "$out" >&2; return 1; }
  echo "$out" >&2
  sed -n 's/^job \([0-9]*\): .*/\1/p' <<<"$out"
}
# wait_for SECONDS COMMAND...: polls every 0.5 s.
wait_for() {
  local limit=$1; shift
  local until=$(($(date +%s) + limit))
  while [ "$(date +%s)" -lt "$until" ]; do "$@" && return 0; sleep 0.5; done
  return 1
}
serves() { grep -q "^haco-fleet job $1: the whole fleet serves" "$temp/job-$1.out" 2>/dev/null; }
job_state() { scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_over() { local s; s=$(job_state "$1"); [ -n "$s" ] && [ "$s" != RUNNING ] && [ "$s" != PENDING ] && [ "$s" != COMPLETING ]; }
# node_of PORT: the node whose network namespace answers on PORT ("" or "node1 node2" when not exactly one).
nodes_serving() {
  local port=$1 n served=()
  for n in node1 node2; do
    "$cluster" exec --dir "$cdir" "$n" curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && served+=("$n")
  done
  echo "${served[*]}"
}
# expect_gone WHAT JOB FIRST_PORT COUNT [PIDS]: nothing of that job's fleet on
# either node: no slice state, no mount or tree of its instances, none of the
# recorded processes, no cgroup of its slices.
expect_gone() {
  local what=$1 job=$2 first=$3 count=$4 pids=${5:-} left port
  left=$(find "$root/slurm" -mindepth 1 -maxdepth 1 -name "$job.*" 2>/dev/null)
  [ -z "$left" ] || fail "$what: slice state left: $left"
  for port in $(seq "$first" $((first + count - 1))); do
    grep -q " $rootfs_base/t-$port " /proc/self/mountinfo && fail "$what: $rootfs_base/t-$port still mounted"
    [ -e "$rootfs_base/t-$port" ] && fail "$what: tree $rootfs_base/t-$port left"
    [ -e "$data/instances/t-$port" ] && fail "$what: tree $data/instances/t-$port left"
  done
  # An init whose supervisor died first is reaped by pid 1, which may take a
  # moment after it was killed: a zombie that is reaped within 10 s is gone.
  wait_for 10 none_exists $pids
  for p in $pids; do
    [ -e "/proc/$p" ] && fail "$what: process $p ($(cat /proc/$p/comm 2>/dev/null), state $(proc_state "$p")) still there"
  done
  left=$(find /sys/fs/cgroup -type d -name "*-j$job-s*" 2>/dev/null)
  [ -z "$left" ] || fail "$what: cgroups left: $left"
}
none_exists() { local p; for p in "$@"; do [ ! -e "/proc/$p" ] || return 1; done; }
proc_state() { sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null; }
slices_gone() { [ -z "$(find "$root/slurm" -mindepth 1 -maxdepth 1 -name "$1.*")" ]; }

# The time limit runs while the steps below do (Slurm's limits are whole
# minutes, checked every 30 s): its own fleet `tl` on ports of its own.
step "a job with a time limit of 1 minute, beside the others"
tl_first=$((base + 30))
tl_job=$(fleet_name=tl submit 4 "$tl_first" --time 1) || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$tl_job")
wait_for 120 serves "$tl_job" || fail "job $tl_job never served"
t_tl=$(date +%s.%N)
tl_pids=$(haco ps --json | jq -r '.fleets[] | select(.slurm.job == "'"$tl_job"'") | .instances[].pid')

step "submitting 8 instances over 2 nodes"
t0=$(date +%s.%N)
job=$(submit 8 "$base") || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$job")
wait_for 120 serves "$job" || { fail "job $job: the whole fleet never served"; cat "$temp/job-$job.out" >&2; exit 1; }
echo "job $job: whole fleet served $(since $t0) s after submit"
cat "$temp/job-$job.out"

status=$(haco slurm status "$job" --json) || fail "slurm status $job"
[ "$(jq -r '.slurm_state' <<<"$status")" = RUNNING ] || fail "status: $(jq -c . <<<"$status")"
[ "$(jq -r '[.slices[] | .state] | join(",")' <<<"$status")" = "ready,ready" ] || fail "slice states: $status"
[ "$(jq -r '[.slices[] | .node] | join(",")' <<<"$status")" = "node1,node2" ] || fail "slice nodes: $status"
[ "$(jq -r '[.slices[] | .ports] | join(",")' <<<"$status")" = "$base-$((base + 3)),$((base + 4))-$((base + 7))" ] ||
  fail "slice ports: $status"
haco slurm status "$job"

step "every port served from exactly one node, its slice's"
for i in $(seq 0 7); do
  port=$((base + i))
  expected=$([ "$i" -lt 4 ] && echo node1 || echo node2)
  got=$(nodes_serving "$port")
  [ "$got" = "$expected" ] || fail "port $port served by '$got', expected '$expected'"
done

step "ps shows the slices; each init sits in its job's cgroup"
ps_json=$(haco ps --json) || fail "ps --json"
[ "$(jq -r '[.fleets[] | select(.slurm.job == "'"$job"'") | "\(.fleet)@\(.slurm.node)"] | sort | join(",")' <<<"$ps_json")" = "sl-j$job-s0@node1,sl-j$job-s1@node2" ] ||
  fail "ps fleets: $(jq -c '[.fleets[] | {fleet, slurm}]' <<<"$ps_json")"
pids=$(jq -r '.fleets[] | select(.slurm.job == "'"$job"'") | .instances[].pid' <<<"$ps_json")
[ "$(wc -w <<<"$pids")" -eq 8 ] || fail "ps lists $(wc -w <<<"$pids") running instances, expected 8"
for p in $pids; do
  grep -q "job_$job/" "/proc/$p/cgroup" || fail "instance pid $p is not below job $job's cgroup: $(cat /proc/$p/cgroup)"
done
# Cgroup v2: Slurm signals the processes of its task cgroups alone (not their
# children), so each task stays in its own and its slice sits beside it, in
# the step's user/ level, with the instances' limits (pids included, which
# Slurm does not pass down itself).
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  for s in 0 1; do
    task_pid=$(jq -r '.owner.pid' "$root/slurm/$job.$s/slice.json")
    task_cg=$(sed -n 's/^0:://p' "/proc/$task_pid/cgroup")
    [[ $task_cg =~ /job_$job/step_[0-9]+/user/task_[a-z0-9_]+$ ]] ||
      fail "slice $s: its task (pid $task_pid) is not in a Slurm task cgroup but in $task_cg"
  done
  for p in $pids; do
    cg=$(sed -n 's/^0:://p' "/proc/$p/cgroup")
    [[ $cg =~ /job_$job/step_[0-9]+/user/haco-fleet-sl-j$job-s[01]/instances/t-[0-9]+$ ]] ||
      fail "instance pid $p is not in its slice's cgroup beside the task: $cg"
    [ "$(cat "/sys/fs/cgroup$cg/pids.max" 2>/dev/null)" = 64 ] ||
      fail "instance pid $p: pids.max is '$(cat "/sys/fs/cgroup$cg/pids.max" 2>&1)', expected the definition's 64"
  done
fi
haco ps | head -3

step "scancel: every slice taken down on both nodes"
t0=$(date +%s.%N)
scancel "$job"
wait_for 90 job_over "$job" || fail "job $job still $(job_state "$job") after scancel"
wait_for 30 slices_gone "$job"
echo "job $job: $(job_state "$job") and taken down $(since $t0) s after scancel"
expect_gone "after scancel" "$job" "$base" 8 "$pids"
tail -6 "$temp/job-$job.out"

step "a slice that fails fails its task and the job, with the reason in the output"
job=$(HACO_TEST_FAIL_PORT=$((base + 5)) submit 8 "$base") || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$job")
wait_for 120 job_over "$job" || fail "job $job still $(job_state "$job") with a failing slice"
[ "$(job_state "$job")" = FAILED ] || fail "job $job with a failing slice ended $(job_state "$job"), expected FAILED"
grep -q "^haco-fleet job $job: slice 2/2 on node2 failed: t-$((base + 5)): " "$temp/job-$job.out" ||
  fail "job $job's output does not say why slice 2 failed: $(grep 'haco-fleet' "$temp/job-$job.out")"
grep "failed" "$temp/job-$job.out" | head -3
wait_for 30 slices_gone "$job"
expect_gone "after a failed slice" "$job" "$base" 8

step "the time limit ended the fleet tl"
wait_for 150 job_over "$tl_job" || fail "job $tl_job still $(job_state "$tl_job") past its time limit"
[ "$(job_state "$tl_job")" = TIMEOUT ] || fail "job $tl_job ended $(job_state "$tl_job"), expected TIMEOUT"
wait_for 30 slices_gone "$tl_job"
echo "job $tl_job: Slurm reports $(job_state "$tl_job") $(since $t_tl) s after it served"
expect_gone "after the time limit" "$tl_job" "$tl_first" 4 "$tl_pids"

step "a task killed with SIGKILL: the job fails, and the Epilog takes its slice down"
job=$(submit 8 "$base") || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$job")
wait_for 120 serves "$job" || { fail "job $job never served"; cat "$temp/job-$job.out" >&2; exit 1; }
pids=$(haco ps --json | jq -r '.fleets[] | select(.slurm.job == "'"$job"'") | .instances[].pid')
task_pid=$(jq -r '.owner.pid' "$root/slurm/$job.0/slice.json")
t0=$(date +%s.%N)
kill -KILL "$task_pid" || fail "kill -KILL $task_pid (the task of slice 1)"
wait_for 90 job_over "$job" || fail "job $job still $(job_state "$job") after its task was killed"
wait_for 30 slices_gone "$job"
echo "job $job: $(job_state "$job") and taken down $(since $t0) s after its task was killed"
expect_gone "after a task's SIGKILL" "$job" "$base" 8 "$pids"

step "a node killed in the middle of a run"
job=$(submit 8 "$base") || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$job")
wait_for 120 serves "$job" || { fail "job $job never served"; cat "$temp/job-$job.out" >&2; exit 1; }
pids=$(haco ps --json | jq -r '.fleets[] | select(.slurm.job == "'"$job"'") | .instances[].pid')
killed_job=$job
t0=$(date +%s.%N)
"$cluster" kill-node --dir "$cdir" node2 || fail "kill-node node2"
wait_for 90 job_over "$job" || fail "job $job still $(job_state "$job") after node2 was killed"
echo "job $job: Slurm reports $(job_state "$job") $(since $t0) s after node2 was killed"
[ "$(job_state "$job")" = NODE_FAIL ] || fail "job $job ended $(job_state "$job"), expected NODE_FAIL"
scontrol -o show node node2 | grep -o 'State=[A-Z_+]*' | grep -q DOWN || fail "node2 not DOWN: $(scontrol -o show node node2)"
# node1's slice: taken down by its task (SIGTERM) and the Epilog.
wait_for 60 bash -c "[ ! -e '$root/slurm/$job.0' ]" || fail "node1's slice of job $job still there"
# node2's slice: its processes died with the node, its mounts and state stay
# until the node runs something again.
[ -e "$root/slurm/$job.1" ] || fail "node2's slice state vanished although nothing ran there"

step "node2 back; the next job there clears what the killed one left"
"$cluster" restart-node --dir "$cdir" node2 || fail "restart-node node2"
wait_for 60 bash -c "sinfo -h -n node2 -o %t | grep -qx idle" || {
  scontrol update nodename=node2 state=resume 2>/dev/null
  wait_for 30 bash -c "sinfo -h -n node2 -o %t | grep -qx idle" || fail "node2 not idle: $(sinfo -h -n node2)"
}
job=$(submit 4 $((base + 10))) || { fail "slurm submit"; exit 1; }
jobs_submitted+=("$job")
wait_for 120 serves "$job" || { fail "job $job never served"; cat "$temp/job-$job.out" >&2; }
[ -e "$root/slurm/$killed_job.1" ] && fail "the killed node's slice is still there after a new job ran on it"
more=$(haco ps --json | jq -r '.fleets[] | select(.slurm.job == "'"$job"'") | .instances[].pid')
scancel "$job"
wait_for 90 job_over "$job" || fail "job $job still $(job_state "$job") after scancel"
wait_for 30 slices_gone "$job"
expect_gone "the killed node's job" "$killed_job" "$base" 8 "$pids"
expect_gone "the next job" "$job" $((base + 10)) 4 "$more"
# Nothing at all under the test's roots.
left=$(find "$root/slurm" -mindepth 1 -maxdepth 1 -name '*.*'; find "$rootfs_base" "$data/instances" -mindepth 1 -maxdepth 1)
[ -z "$left" ] || fail "left under the test's roots: $left"
left=$(awk -v d="$temp/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo)
[ -z "$left" ] || fail "mounts left under $temp: $left"

step "stopping the cluster"
t0=$(date +%s.%N)
"$cluster" stop --dir "$cdir" || fail "cluster stop"
echo "cluster stopped in $(since $t0) s"
[ "$failures" -eq 0 ] && echo "slurm cluster test: all checks passed" || echo "slurm cluster test: $failures failure(s)"
[ "$failures" -eq 0 ]
