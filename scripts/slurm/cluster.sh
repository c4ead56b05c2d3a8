#!/usr/bin/env bash
# A real Slurm cluster on this one machine, from Debian's packages, for the
# multi-host tests: one munged, one slurmctld and N slurmd nodes node1..nodeN.
# Everything it makes (config, state, spool, logs, pid files) lives in DIR;
# `stop` removes all of it and leaves nothing behind.
#
#   cluster.sh start --dir DIR [--nodes N] [--prolog PATH] [--epilog PATH]
#                    [--slurmd-timeout S] [--wait S]
#   cluster.sh stop --dir DIR [--keep-logs]
#   cluster.sh exec --dir DIR NODE CMD...
#   cluster.sh kill-node --dir DIR NODE
#   cluster.sh restart-node --dir DIR NODE
#   cluster.sh env --dir DIR
#
# Exit: 0 ok, 1 failure (with the reason and the daemons' log tails), 2 usage.
#
# Layout (I: the first index 0..63 whose bridge hslurmI is free, so that
# clusters in other DIRs can run at the same time; recorded in DIR)
# * Network: a bridge hslurmI (10.213.I.1/24, the only address on the host
#   side; clients such as sbatch or srun reach slurmctld through it). slurmctld
#   runs in a network and UTS namespace of its own (10.213.I.2, hostname
#   slurmctl), so its port never meets a system slurmctld. Node K has its own
#   network namespace (veth hsI-nK to the bridge, 10.213.I.(10+K), loopback
#   up) and UTS namespace (hostname nodeK, which slurmd takes as NodeName).
# * Namespaces are held by one `sleep infinity` per node (and one for the
#   controller), kept in the cgroup haco-slurmI/ns so that killing a node's
#   cgroup (kill-node) leaves them in place. `exec` and the slurmd's enter them
#   with nsenter.
# * Cgroups: node K's processes live in their own cgroup haco-slurmI/nodeK
#   (in every v1 hierarchy, below the cgroup there of the process that runs
#   `start`). The node's cgroup namespace is rooted there and its mount
#   namespace has /sys/fs/cgroup mounted again, so slurmd sees that cgroup as
#   the root: a task sees "freezer:/slurm_nodeK/uid_U/job_J/step_S" and the
#   step cgroups of node1 and node2 are distinct directories on the host.
#   ProctrackType=proctrack/cgroup.
#   Under systemd (cgroup v2 only) each of these cgroups is the child "cg" of
#   a delegated unit haco-slurmI-NAME.service (see cgroup_create), and `exec`
#   runs its command in the leaf cg/exec. A node has no cgroup namespace
#   there: the delegated scope of its steps, system.slice/nodeK_slurmstepd.scope,
#   is made as on a real host (see slurm_v2_scope), so a task sees
#   "0::/system.slice/nodeK_slurmstepd.scope/job_J/step_S/user/task_T" with
#   the controllers Slurm enables. The scope is named after the node, so one
#   cluster runs at a time under systemd. docs/multi-host-cluster.md has the
#   details.
# * Mounts: a node's mount namespace differs from the host's only in
#   /sys/fs/cgroup. It is created with --propagation unchanged, and the host's
#   / is made shared if it was private (a systemd host has it shared already;
#   the last cluster to stop makes it private again), so mounts that
#   processes on a node make under / (/run, /var/lib, /tmp, the repository:
#   all on the root file system here) show on the host and are unmounted from
#   there. Only the root mount is made shared, not recursively. Inside the
#   node /sys is made a slave (host mounts still reach it, its own do not
#   leave it) and the host's cgroup mounts are replaced by ones rooted at the
#   node's cgroup.
set -euo pipefail

prog=cluster.sh
# Made when a cluster made / shared; the last cluster to stop makes it private again.
root_shared_marker=/run/haco-slurm-made-root-shared
# Set for cluster I (the index start picks) by set_names.
set_names() {
  net_index=$1
  bridge=hslurm$1
  subnet=10.213.$1
  host_addr=$subnet.1
  ctl_addr=$subnet.2
  cg_name=haco-slurm$1
  link_prefix=hs$1-
}
ctl_name=slurmctl

die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '/^#   cluster.sh start/,/^# Exit:/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
note() { echo "$prog: $*" >&2; }

# ---- arguments ---------------------------------------------------------------
verb=${1:-}
[ -n "$verb" ] || usage
shift
dir= nodes=2 prolog= epilog= slurmd_timeout=10 wait_s=120 keep_logs=0
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage; dir=$2; shift ;;
    --nodes) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]?$ ]] || usage; nodes=$2; shift ;;
    --prolog) [ $# -ge 2 ] || usage; prolog=$2; shift ;;
    --epilog) [ $# -ge 2 ] || usage; epilog=$2; shift ;;
    --slurmd-timeout) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage; slurmd_timeout=$2; shift ;;
    --wait) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage; wait_s=$2; shift ;;
    --keep-logs) keep_logs=1 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) echo "$prog: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
  shift
done
[ -n "$dir" ] || usage
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
dir=${dir%/}
state=$dir/cluster.state
[ "$(id -u)" -eq 0 ] || die "must run as root"

# ---- state -------------------------------------------------------------------
# cluster.state holds shell assignments, appended before each thing is made,
# so that stop knows what to undo even after a start that failed half-way.
record() { printf '%s=%q\n' "$1" "$2" >>"$state"; }
load_state() {
  nodes=0 cg_layout= cg_parents= net_index=
  # shellcheck disable=SC1090
  [ -f "$state" ] && . "$state"
  [ -z "$net_index" ] || set_names "$net_index"
  return 0
}

# ---- cgroups -----------------------------------------------------------------
# The cgroup layout: v2 when /sys/fs/cgroup is cgroup2, v1 (or hybrid) otherwise.
detect_layout() {
  if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then echo v2; else echo v1; fi
}

# v1: "MOUNTPOINT DIR" per hierarchy, DIR being this process's cgroup in it,
# for every hierarchy in /proc/self/cgroup (the unified one of a hybrid host too).
v1_own_cgroups() {
  local id ctrls path opts target
  while IFS=: read -r id ctrls path; do
    if [ -z "$ctrls" ]; then
      target=$(findmnt -rn -t cgroup2 -o TARGET | head -n1)
    else
      target=
      while read -r t opts; do
        local want ok=1
        for want in ${ctrls//,/ }; do
          [[ ,$opts, == *",$want,"* ]] || ok=0
        done
        [ $ok -eq 1 ] && { target=$t; break; }
      done < <(findmnt -rn -t cgroup -o TARGET,FS-OPTIONS)
    fi
    [ -n "$target" ] || continue
    echo "$target ${target}${path%/}"
  done </proc/self/cgroup
}

# Every cgroup directory of NAME on the host: haco-slurmI/NAME below the
# starting process's cgroup in each v1 hierarchy, or the child "cg" of the
# delegated unit haco-slurmI-NAME.service under systemd (v2). NAME "" is
# their parent (v1).
systemd_unit_dir() { echo "/sys/fs/cgroup/system.slice/$cg_name-$1.service"; }
unit_cg_dir() { echo "$(systemd_unit_dir "$1")/cg"; }  # NAME's own processes under systemd
stepd_scope() { echo "$1_slurmstepd.scope"; }
stepd_scope_dir() { echo "/sys/fs/cgroup/system.slice/$(stepd_scope "$1")"; }
cgroup_dirs_of() {
  local p
  if [ "$cg_layout" = systemd ]; then
    [ -z "$1" ] || unit_cg_dir "$1"
    case $1 in node*) stepd_scope_dir "$1" ;; esac
    return 0
  fi
  for p in $cg_parents; do echo "$p/$cg_name/$1"; done
}

cgroup_create() {
  local d sub f
  if [ "$cg_layout" = systemd ]; then
    # A service whose only own process, a `sleep infinity` in the leaf
    # "keeper", keeps it (and its cgroup) alive while everything in "cg" may
    # be killed; systemd drops the cgroup of a unit left without processes.
    # Delegate=yes hands the subtree over to us and to Slurm's cgroup/v2.
    local unit=$cg_name-$1.service u main c
    u=$(systemd_unit_dir "$1")
    systemd-run --quiet --unit "$unit" -p Delegate=yes -p Type=exec /bin/sleep infinity \
      || die "systemd-run of $unit failed"
    main=$(systemctl show -p MainPID --value "$unit")
    [ -d "$u" ] && [ "${main:-0}" != 0 ] || die "$unit has no cgroup $u or no main process"
    mkdir "$u/keeper"
    echo "$main" >"$u/keeper/cgroup.procs"
    for c in $(cat "$u/cgroup.controllers"); do
      echo "+$c" >"$u/cgroup.subtree_control" || die "cannot enable $c in $u"
    done
    mkdir "$u/cg"
    return 0
  fi
  for d in $(cgroup_dirs_of "$1"); do
    for sub in "${d%/"$1"}" "$d"; do
      mkdir -p "$sub"
      # A new v1 cpuset has no cpus nor mems and takes no process until given its parent's.
      for f in cpuset.cpus cpuset.mems; do
        if [ -f "$sub/$f" ] && [ -z "$(cat "$sub/$f")" ]; then
          cat "${sub%/*}/$f" >"$sub/$f"
        fi
      done
    done
  done
}

cgroup_enter() {  # NAME PID
  local d
  if [ "$cg_layout" = systemd ]; then
    echo "$2" >"$(unit_cg_dir "$1")/cgroup.procs"
    return 0
  fi
  for d in $(cgroup_dirs_of "$1"); do echo "$2" >"$d/cgroup.procs"; done
}

# Under v2 `exec` runs its command in the leaf NODE/exec: a cgroup whose
# children have controllers (Slurm's) takes no processes.
cgroup_enter_exec() {  # NAME PID
  local d
  if [ "$cg_layout" = v1 ]; then cgroup_enter "$@"; return; fi
  d=$(unit_cg_dir "$1")/exec
  mkdir -p "$d"
  echo "$2" >"$d/cgroup.procs"
}

# Every pid in NAME's cgroups and their descendants.
cgroup_pids() {
  local d
  for d in $(cgroup_dirs_of "$1"); do
    [ -d "$d" ] || continue  # a scope systemd removed once its processes were gone
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -u
}

# SIGKILL every process in NAME's cgroups (cgroup.kill on v2, a loop over
# cgroup.procs on v1) and waits until they are empty.
cgroup_kill() {
  local name=$1 d i pids
  if [ "$cg_layout" = systemd ]; then
    for d in $(cgroup_dirs_of "$name"); do
      if [ -e "$d/cgroup.kill" ]; then echo 1 >"$d/cgroup.kill" 2>/dev/null || true; fi
    done
  fi
  local end=$((SECONDS + 20))
  while [ $SECONDS -le $end ]; do
    pids=$(cgroup_pids "$name")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  die "processes left in cgroup $cg_name/$name after SIGKILL: $(cgroup_pids "$name" | tr '\n' ' ')"
}

# Removes the cgroups below NAME's (Slurm's and exec's), deepest first, and
# under v2 turns its controllers for children off again: what a reboot of
# the node would leave, so that slurmd can start in it again.
cgroup_reset() {
  local d c off=
  for d in $(cgroup_dirs_of "$1"); do
    [ -d "$d" ] || continue
    case $d in *_slurmstepd.scope) continue ;; esac  # systemd's, gone with its processes
    find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -z "$(find "$d" -mindepth 1 -type d)" ] || die "cannot remove the cgroups below $d"
    if [ "$cg_layout" = systemd ]; then
      for c in $(cat "$d/cgroup.subtree_control"); do off+=" -$c"; done
      [ -z "$off" ] || echo $off >"$d/cgroup.subtree_control"
    fi
  done
}

cgroup_remove() {
  local d
  cgroup_reset "$1"
  if [ "$cg_layout" = systemd ]; then
    [ -z "$1" ] && return 0
    case $1 in
      node*) systemctl stop "$(stepd_scope "$1")" 2>/dev/null || true
             d=$(stepd_scope_dir "$1")
             [ ! -d "$d" ] || die "cannot remove cgroup $d" ;;
    esac
    d=$(systemd_unit_dir "$1")
    [ -d "$d" ] || return 0
    systemctl stop "$cg_name-$1.service" 2>/dev/null || true
    [ ! -d "$d" ] || die "cannot remove cgroup $d"
    return 0
  fi
  for d in $(cgroup_dirs_of "$1"); do
    [ -d "$d" ] || continue
    rmdir "$d" || die "cannot remove cgroup $d"
  done
}

cgroups_init() {
  cg_layout=$(detect_layout)
  if [ "$cg_layout" = v2 ]; then
    [ -d /run/systemd/system ] || die "cgroup v2 without systemd is not supported"
    cg_layout=systemd
  fi
  record cg_layout "$cg_layout"
  if [ "$cg_layout" = v1 ]; then
    cg_parents=$(v1_own_cgroups | awk '{print $2}' | tr '\n' ' ')
    cg_parents=${cg_parents% }
    record cg_parents "$cg_parents"
  fi
}

# ---- namespaces --------------------------------------------------------------
holder_pid_file() { echo "$dir/ns/$1.pid"; }

# The pid of NAME's namespace holder, if it is alive and still ours.
holder_pid() {
  local f pid
  f=$(holder_pid_file "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ] || return 1
  echo "$pid"
}

# Starts NAME's holder: `sleep infinity` in new net+uts(+mnt+cgroup)
# namespaces, the cgroup namespace rooted at haco-slurm/NAME.
holder_start() {  # NAME UNSHARE-OPTION...
  local name=$1; shift
  local f pid i
  f=$(holder_pid_file "$name")
  mkdir -p "$dir/ns"
  (
    cgroup_enter "$name" "$BASHPID"
    exec unshare "$@" -- sleep infinity </dev/null >/dev/null 2>&1
  ) &
  pid=$!
  disown "$pid"
  echo "$pid" >"$f"
  local end=$((SECONDS + wait_s))
  while [ $SECONDS -le $end ]; do
    if [ "$(readlink "/proc/$pid/ns/uts" 2>/dev/null)" != "$(readlink /proc/self/ns/uts)" ] &&
       [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ]; then
      # Out of the node's cgroup, so that killing the node keeps its namespaces.
      cgroup_enter ns "$pid"
      return 0
    fi
    alive "$pid" || die "the namespace holder of $name exited"
    sleep 0.05
  done
  die "the namespace holder of $name did not start"
}

holders_stop() {  # NAME...
  local name pid pids=()
  for name in "$@"; do
    pid=$(holder_pid "$name") && pids+=("$pid")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_gone 5 "${pids[@]}"
  fi
  for name in "$@"; do rm -f "$(holder_pid_file "$name")"; done
}

# The nsenter options of NAME's namespaces.
ns_enter_opts() {
  local pid
  pid=$(holder_pid "$1") || die "$1 has no namespaces (is the cluster started?)"
  if [ "$1" = ctl ]; then
    echo "-t $pid --net --uts"
  elif [ "$cg_layout" = systemd ]; then
    echo "-t $pid --net --uts --mount"
  else
    echo "-t $pid --net --uts --mount --cgroup"
  fi
}

node_addr() { echo "$subnet.$((10 + ${1#node}))"; }

# Node K's namespaces: hostname, loopback, its veth and address, and its own
# /sys/fs/cgroup whose hierarchies are rooted at the node's cgroup.
node_ns_create() {
  local name=$1 pid veth=${link_prefix}n${1#node}
  if [ "$cg_layout" = systemd ]; then
    holder_start "$name" --net --uts --mount --propagation unchanged
  else
    holder_start "$name" --net --uts --mount --cgroup --propagation unchanged
  fi
  pid=$(holder_pid "$name")
  record_link "$veth"
  ip link add "$veth" type veth peer name eth0 netns "$pid"
  ip link set "$veth" master "$bridge" up
  local mounts
  mounts=$(findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS | awk '$1 ~ "^/sys/fs/cgroup"')
  # shellcheck disable=SC2046
  nsenter $(ns_enter_opts "$name") -- bash -euc '
    hostname "$1"
    ip link set lo up
    ip addr add "$2/24" dev eth0
    ip link set eth0 up
    # Mounts under /sys stop propagating to the host (they still come from it),
    # and the host cgroup mounts leave this namespace, so that its mountinfo
    # shows only the cgroup file systems rooted at the node.
    mount --make-rslave /sys
    umount -R /sys/fs/cgroup
    if [ "$3" != systemd ]; then
      mount -t tmpfs -o mode=755,nosuid,nodev,noexec haco-slurm-cgroup /sys/fs/cgroup
      while read -r target fstype opts; do
        [ "$target" != /sys/fs/cgroup ] || continue
        mkdir -p "$target"
        opts=$(echo "$opts" | tr , "\n" | grep -vx -e rw -e nsdelegate -e memory_recursiveprot | paste -sd, -)
        mount -t "$fstype" ${opts:+-o "$opts"} cgroup "$target"
      done <<<"$4"
    else
      mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
    fi
  ' node-setup "$name" "$(node_addr "$name")" "$cg_layout" "$mounts"
}

ctl_ns_create() {
  local pid veth=${link_prefix}c
  holder_start ctl --net --uts
  pid=$(holder_pid ctl)
  record_link "$veth"
  ip link add "$veth" type veth peer name eth0 netns "$pid"
  ip link set "$veth" master "$bridge" up
  # shellcheck disable=SC2046
  nsenter $(ns_enter_opts ctl) -- bash -euc '
    hostname "$1"; ip link set lo up
    ip addr add "$2/24" dev eth0; ip link set eth0 up
  ' ctl-setup "$ctl_name" "$ctl_addr"
}

record_link() { echo "$1" >>"$dir/ns/links"; }

# ---- daemons -----------------------------------------------------------------
# A pid from PIDFILE whose process is still running EXE (a pid file may be stale).
daemon_pid() {  # PIDFILE EXE
  local pid
  [ -f "$1" ] || return 1
  pid=$(tr -dc 0-9 <"$1")
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# Whether PID runs (a zombie waiting for its parent to reap it does not).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Waits until none of PIDS runs; false after S seconds.
wait_gone() {  # S PID...
  local s=$1 i p left; shift
  local end=$((SECONDS + s))
  while [ $SECONDS -le $end ]; do
    left=
    for p in "$@"; do alive "$p" && left+=" $p"; done
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  return 1
}

# SIGTERM to the daemons of PIDFILE:EXE..., then SIGKILL after 10 s.
daemons_stop() {  # PIDFILE:EXE...
  local spec pids=() pid
  for spec in "$@"; do
    pid=$(daemon_pid "${spec%%:*}" "${spec#*:}") && pids+=("$pid")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait_gone 10 "${pids[@]}" && return 0
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait_gone 5 "${pids[@]}"
}

wait_pid_file() {  # PIDFILE EXE WHAT [LOG]
  local end=$((SECONDS + wait_s))
  while [ $SECONDS -le $end ]; do
    daemon_pid "$1" "$2" >/dev/null && return 0
    # A daemon that fails after forking says so only in its log.
    [ -z "${4:-}" ] || ! grep -q 'fatal:' "$4" 2>/dev/null || fail_with_logs "$3 failed to start"
    sleep 0.1
  done
  fail_with_logs "$3 did not start (no live pid in $1)"
}

munged_exe=$(command -v munged || true)
slurmctld_exe=$(readlink -f "$(command -v slurmctld || echo /usr/sbin/slurmctld)")
slurmd_exe=$(readlink -f "$(command -v slurmd || echo /usr/sbin/slurmd)")

munge_start() {
  mkdir -p "$dir/munge"
  chmod 755 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  "$munged_exe" --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" \
    || fail_with_logs "munged failed to start"
  wait_pid_file "$dir/munge/munged.pid" "$munged_exe" munged
}

write_config() {
  local n last_addr
  last_addr=$(node_addr "node$nodes")
  mkdir -p "$dir/ctld/state" "$dir/nodes"
  for n in $(seq "$nodes"); do mkdir -p "$dir/nodes/node$n/spool"; done
  {
    echo "# Written by scripts/slurm/cluster.sh; removed by its stop."
    echo "ClusterName=$cg_name"
    echo "SlurmctldHost=$ctl_name($ctl_addr)"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$dir/munge/munge.socket"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "StateSaveLocation=$dir/ctld/state"
    echo "SlurmctldPidFile=$dir/ctld/slurmctld.pid"
    echo "SlurmctldLogFile=$dir/ctld/slurmctld.log"
    echo "SlurmdSpoolDir=$dir/nodes/%n/spool"
    echo "SlurmdPidFile=$dir/nodes/%n/slurmd.pid"
    echo "SlurmdLogFile=$dir/nodes/%n/slurmd.log"
    echo "SlurmctldDebug=info"
    echo "SlurmdDebug=info"
    echo "ProctrackType=proctrack/cgroup"
    # Under cgroup v2 slurmd sets up its cgroups (the stepd scope below) only
    # with a cgroup task plugin; v1 needs none.
    if [ "$cg_layout" = v1 ]; then echo "TaskPlugin=task/none"; else echo "TaskPlugin=task/cgroup"; fi
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "SchedulerType=sched/backfill"
    echo "MpiDefault=none"
    echo "SlurmdTimeout=$slurmd_timeout"
    echo "KillWait=30"
    echo "MinJobAge=600"
    echo "ReturnToService=2"
    # A batch job hit by a node crash ends as NODE_FAIL instead of going back to the queue.
    echo "JobRequeue=0"
    # The node lines describe the nodes, not this machine's hardware.
    echo "SlurmdParameters=config_overrides"
    if [ -n "$prolog" ]; then echo "Prolog=$prolog"; echo "PrologFlags=Alloc"; fi
    if [ -n "$epilog" ]; then echo "Epilog=$epilog"; fi
    for n in $(seq "$nodes"); do
      echo "NodeName=node$n NodeAddr=$(node_addr "node$n") CPUs=2 RealMemory=256 State=UNKNOWN"
    done
    echo "PartitionName=fleet Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP"
  } >"$dir/slurm.conf"
  : "$last_addr"
  {
    echo "# Written by scripts/slurm/cluster.sh."
    echo "CgroupPlugin=cgroup/$([ "$cg_layout" = v1 ] && echo v1 || echo v2)"
    echo "CgroupMountpoint=/sys/fs/cgroup"
    echo "CgroupAutomount=no"
    echo "ConstrainCores=no"
    echo "ConstrainRAMSpace=no"
    echo "ConstrainDevices=no"
  } >"$dir/cgroup.conf"
}

slurmctld_start() {
  cgroup_enter ctl "$BASHPID"
  # shellcheck disable=SC2046
  nsenter $(ns_enter_opts ctl) -- env -u INVOCATION_ID SLURM_CONF="$dir/slurm.conf" \
    "$slurmctld_exe" -f "$dir/slurm.conf" </dev/null >>"$dir/ctld/slurmctld.out" 2>&1 \
    || fail_with_logs "slurmctld failed to start"
  wait_pid_file "$dir/ctld/slurmctld.pid" "$slurmctld_exe" slurmctld "$dir/ctld/slurmctld.log"
}

# Under systemd, the delegated scope of a node's slurmstepds,
# system.slice/NODE_slurmstepd.scope, made before slurmd starts as systemd
# makes it on a real host: a transient scope whose placeholder process sits
# in its leaf "system" (slurmstepds go there too), every controller enabled
# for the steps' cgroups. A scope left by another cluster is refused.
slurm_v2_scope() {  # NODE
  local scope d pid
  scope=$(stepd_scope "$1")
  d=$(stepd_scope_dir "$1")
  ! systemctl is-active --quiet "$scope" ||
    die "$scope is running: another cluster's $1 (one cluster at a time under systemd)"
  # After kill-node: the killed scope stays loaded as failed, and systemd
  # removes its cgroup tree on its own, shortly.
  systemctl reset-failed "$scope" 2>/dev/null || true
  local end=$((SECONDS + wait_s))
  while [ -d "$d" ]; do
    [ $SECONDS -le $end ] || die "the cgroup $d of the stopped $scope is still there"
    sleep 0.1
  done
  systemd-run --quiet --scope --unit "$scope" -p Delegate=yes /bin/sleep infinity </dev/null >/dev/null 2>&1 &
  pid=$!
  disown "$pid"
  end=$((SECONDS + wait_s))
  until [ -d "$d" ] && grep -qx "$pid" "$d/cgroup.procs" 2>/dev/null; do
    [ $SECONDS -le $end ] && alive "$pid" || die "the scope $scope did not start"
    sleep 0.05
  done
  mkdir -p "$d/system"
  echo "$pid" >"$d/system/cgroup.procs"
  for c in $(cat "$d/cgroup.controllers"); do echo "+$c" >"$d/cgroup.subtree_control"; done
}

slurmd_start() {  # NODE
  local name=$1
  rm -f "$dir/nodes/$name/slurmd.pid"
  if [ "$cg_layout" = systemd ]; then
    slurm_v2_scope "$name"
    mkdir -p "$(unit_cg_dir "$name")/slurmd"
  fi
  (
    if [ "$cg_layout" = systemd ]; then
      echo "$BASHPID" >"$(unit_cg_dir "$name")/slurmd/cgroup.procs"
    else
      cgroup_enter "$name" "$BASHPID"
    fi
    # shellcheck disable=SC2046
    exec nsenter $(ns_enter_opts "$name") -- env -u INVOCATION_ID SLURM_CONF="$dir/slurm.conf" \
      "$slurmd_exe" -f "$dir/slurm.conf"
  ) </dev/null >>"$dir/nodes/$name/slurmd.out" 2>&1 || fail_with_logs "slurmd of $name failed to start"
  wait_pid_file "$dir/nodes/$name/slurmd.pid" "$slurmd_exe" "slurmd of $name" "$dir/nodes/$name/slurmd.log"
}

slurmd_kill() {  # NODE
  local pid
  if pid=$(daemon_pid "$dir/nodes/$1/slurmd.pid" "$slurmd_exe"); then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  cgroup_kill "$1"
}

# ---- failure report ----------------------------------------------------------
fail_with_logs() {
  {
    echo "$prog: $1"
    local f
    for f in "$dir"/munge/munged.log "$dir"/ctld/slurmctld.log "$dir"/ctld/slurmctld.out \
             "$dir"/nodes/*/slurmd.log "$dir"/nodes/*/slurmd.out; do
      [ -s "$f" ] || continue
      echo "---- last lines of $f"
      tail -n 15 "$f"
    done
  } >&2
  exit 1
}

wait_nodes_idle() {
  local i out= idle
  local end=$((SECONDS + wait_s))
  while [ $SECONDS -le $end ]; do
    out=$(SLURM_CONF=$dir/slurm.conf sinfo -h -N -p fleet -o '%N %t' 2>&1) || out=
    idle=$(awk '$2 == "idle"' <<<"$out" | wc -l)
    [ "$idle" -eq "$nodes" ] && return 0
    sleep 0.5
  done
  fail_with_logs "not every node idle after ${wait_s}s; sinfo: $(echo "$out" | tr '\n' ';')"
}

# ---- verbs -------------------------------------------------------------------
start() {
  local cmd
  for cmd in munged slurmctld slurmd sinfo ip nsenter unshare findmnt; do
    command -v "$cmd" >/dev/null || die "$cmd not found (scripts/install-deps.sh installs it)"
  done
  [ ! -e "$state" ] || die "$dir already holds a cluster; run: $prog stop --dir $dir"
  for f in "$prolog" "$epilog"; do
    [ -z "$f" ] || [ -x "$f" ] || die "$f is not an executable file"
  done
  mkdir -p "$dir"
  : >"$state"
  record nodes "$nodes"
  trap 'status=$?; if [ $status -ne 0 ]; then note "start failed; cleaning up"; teardown; fi' EXIT
  # The first free index: clusters in other DIRs may run at the same time.
  local i
  for i in $(seq 0 63); do
    if ! ip link show "hslurm$i" >/dev/null 2>&1 && ip link add "hslurm$i" type bridge 2>/dev/null; then
      set_names "$i"
      record net_index "$i"
      break
    fi
  done
  [ -n "${net_index:-}" ] || die "no free bridge name hslurm0..hslurm63"

  cgroups_init
  cgroup_create ns
  cgroup_create ctl
  for n in $(seq "$nodes"); do cgroup_create "node$n"; done

  if [ "$(findmnt -n -o PROPAGATION /)" = private ]; then
    : >"$root_shared_marker"
    mount --make-shared /
  fi

  ip addr add "$host_addr/24" dev "$bridge"
  ip link set "$bridge" up
  ctl_ns_create
  for n in $(seq "$nodes"); do node_ns_create "node$n"; done

  write_config
  munge_start
  ( slurmctld_start )
  for n in $(seq "$nodes"); do slurmd_start "node$n"; done
  wait_nodes_idle
  trap - EXIT
}

# Undoes everything cluster.state says was made; each step tolerates its
# thing being gone already.
teardown() {
  set +e
  teardown_failed=0
  load_state
  local n names=() slurmds=()
  for n in $(seq "$nodes"); do
    names+=("node$n")
    slurmds+=("$dir/nodes/node$n/slurmd.pid:$slurmd_exe")
  done
  daemons_stop "${slurmds[@]}"
  if [ -n "$cg_layout" ]; then
    for n in "${names[@]}"; do ( cgroup_kill "$n" ) || teardown_failed=1; done
  fi
  daemons_stop "$dir/ctld/slurmctld.pid:$slurmctld_exe" "$dir/munge/munged.pid:$munged_exe"
  holders_stop "${names[@]}" ctl
  if [ -f "$dir/ns/links" ]; then
    while read -r link; do
      ip link del "$link" 2>/dev/null
    done <"$dir/ns/links"
  fi
  [ -n "$net_index" ] && ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge"
  if [ -n "$cg_layout" ]; then
    ( cgroup_kill ctl ) || teardown_failed=1
    ( cgroup_kill ns ) || teardown_failed=1
    for n in $(seq "$nodes"); do ( cgroup_remove "node$n" ) || teardown_failed=1; done
    ( cgroup_remove ctl ) || teardown_failed=1
    ( cgroup_remove ns ) || teardown_failed=1
    [ "$cg_layout" = systemd ] || ( cgroup_remove "" ) || teardown_failed=1
  fi
  # The last cluster to stop gives / back the private propagation it had.
  if [ -e "$root_shared_marker" ] && ! ip -o link show type bridge | grep -q ': hslurm[0-9]*[:@]'; then
    mount --make-private /
    rm -f "$root_shared_marker"
  fi
  if [ "$keep_logs" = 1 ]; then
    find "$dir" -mindepth 1 -depth ! -name '*.log' ! -name '*.out' \( -type d -empty -o ! -type d \) \
      -exec rm -f {} \; -o -type d -empty -exec rmdir {} \; 2>/dev/null
    rm -f "$state"
  else
    rm -rf "$dir"
  fi
  set -e
}

stop() {
  [ -d "$dir" ] || return 0
  teardown
  [ "$teardown_failed" = 0 ] || die "stop left something behind (see above)"
}

node_arg() {
  [[ ${1:-} =~ ^node[1-9][0-9]?$ ]] || usage
  load_state
  [ "${1#node}" -le "$nodes" ] || die "no $1 in the cluster of $dir ($nodes nodes)"
}

case $verb in
  start) [ $# -eq 0 ] || usage; start ;;
  stop) [ $# -eq 0 ] || usage; stop ;;
  env) [ $# -eq 0 ] || usage; [ -f "$dir/slurm.conf" ] || die "no cluster in $dir"
       printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" ;;
  exec)
    [ $# -ge 2 ] || usage
    node_arg "$1"; name=$1; shift
    opts=$(ns_enter_opts "$name")
    cgroup_enter_exec "$name" "$$"
    # shellcheck disable=SC2086
    exec nsenter $opts -- env SLURM_CONF="$dir/slurm.conf" "$@" ;;
  kill-node) [ $# -eq 1 ] || usage; node_arg "$1"; slurmd_kill "$1" ;;
  restart-node)
    [ $# -eq 1 ] || usage; node_arg "$1"
    ! daemon_pid "$dir/nodes/$1/slurmd.pid" "$slurmd_exe" >/dev/null || die "slurmd of $1 is running"
    cgroup_kill "$1"
    cgroup_reset "$1"
    slurmd_start "$1" ;;
  *) usage ;;
esac
