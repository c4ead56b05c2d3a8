#!/usr/bin/env bash
# Whole-fleet startup benchmark: how long until N phpinfo instances all answer,
# three ways, in one run (see docs/images.md for how to read the output).
#
#   scripts/bench-startup.sh [--modes a,b,c,s,w | --seed] [--base-port P] [--image PATH]
#                            [--haco-fleet BIN] [--up-args "ARGS"] [--out DIR] [N...]
#
#   a  the seed's way: a shell loop per port (tar xzf into a fresh directory,
#      chown -R to port*100, util-linux unshare with the same user mapping and
#      pid/ipc/uts/mount namespaces, Apache in the background, sleep 0.01)
#   b  haco-fleet up templates/phpinfo.haco, with an empty image cache (cold)
#      and again with a warm one
#   c  the floor: the same Apache processes on the host, no namespaces (one
#      shared copy of the image used through chroot for its files only), each
#      in its own session
#   s  haco-fleet up of the seed's own definition, unchanged
#      (../shared/seed/phpinfo-test.haco, its image from build-php-image.sh
#      --seed-layout), cold and warm: its bootstrap block served by the
#      rootfs engine (docs/bootstrap.md); compare with b
#   w  the same with --bootstrap as-written: the block run by /bin/sh, one
#      command at a time, per port
# With b, one plain `tar xzf` of the image is timed in the same run; the
# summary gives cold - warm in units of it and warm / floor.
# --seed is --modes b,s,w. The seed's definition puts its rootfs trees at
# /var/lib/haconiwa/haconiwa-test-PORT: none may exist before the run.
# Every instance of a and c runs in its own cpu cgroup with the template's 30%
# quota (haco-fleet applies the same quota in b). N defaults to 10 50 100;
# ports are P..P+N-1 (default P=10001). Everything started is stopped and
# removed on exit, Ctrl-C or failure.
# Readiness is watched from the start of each run: every 50 ms the listening
# ports are read from /proc/net/tcp, and each port is asked for its page once
# it listens; an instance's ready time is when its first full page came back.
# --out DIR (default: a fresh directory under build/, or /tmp without one;
# printed) receives ready.csv and runs.csv (the raw times) and, through
# scripts/startup-results.sh, results.csv, results.json and startup-cdf.svg
# (instances ready over time, one curve per method; needs gnuplot).
set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
readonly REPO=$(dirname "$SCRIPT_DIR")
readonly ID_RANGE=100
readonly CFS_PERIOD_US=100000
readonly CFS_QUOTA_US=30000

modes=a,b,c
base_port=10001
image=
haco_fleet=${HACO_FLEET:-}
up_args=()
counts=()
out_dir=

die() { echo "bench-startup: $*" >&2; exit 1; }
say() { echo "bench-startup: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --modes) modes=$2; shift ;;
    --seed) modes=b,s,w ;;
    --base-port) base_port=$2; shift ;;
    --image) image=$2; shift ;;
    --haco-fleet) haco_fleet=$2; shift ;;
    --up-args) read -r -a up_args <<<"$2"; shift ;;
    --out) out_dir=$2; shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) counts+=("$1") ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[ ${#counts[@]} -gt 0 ] || counts=(10 50 100)
[ "$(id -u)" -eq 0 ] || die "run as root"
has_mode() { [[ ",$modes," == *",$1,"* ]]; }

if { has_mode b || has_mode s || has_mode w; } && [ -z "$haco_fleet" ]; then
  for candidate in "$REPO"/build/haco-fleet "$REPO"/build*/haco-fleet; do
    [ -x "$candidate" ] && { haco_fleet=$candidate; break; }
  done
  [ -n "$haco_fleet" ] || die "no haco-fleet binary found (build it, or pass --haco-fleet PATH)"
fi
[ -n "$image" ] || image=$("$SCRIPT_DIR/build-php-image.sh" | tail -n1)
[ -f "$image" ] || die "image not found: $image"
readonly seed_definition=$REPO/../shared/seed/phpinfo-test.haco
seed_image=
if has_mode s || has_mode w; then
  [ -f "$seed_definition" ] || die "the seed's definition is not at $seed_definition"
  seed_image=$("$SCRIPT_DIR/build-php-image.sh" --seed-layout | tail -n1)
fi

if [ -z "$out_dir" ]; then
  if [ -d "$REPO/build" ]; then out_dir=$(mktemp -d "$REPO/build/bench-startup.XXXXXX")
  else out_dir=$(mktemp -d /tmp/bench-startup.XXXXXX); fi
fi
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
say "results go to $out_dir"
echo "method,n,port,ready_ms" >"$out_dir/ready.csv"
echo "method,n,total_s,pss_kb" >"$out_dir/runs.csv"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

# --- cgroups ----------------------------------------------------------------
# Our own cpu cgroup, found from /proc/self/mountinfo and /proc/self/cgroup:
# a v1 hierarchy carrying the cpu controller, or cgroup2 when it offers cpu.
cg_version= cg_parent=
discover_cpu_cgroup() {
  local mnt opts rel
  while read -r mnt opts; do
    if [[ ",$opts," == *",cpu,"* ]]; then
      rel=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ { print $3 }' /proc/self/cgroup)
      cg_version=1 cg_parent=$mnt$rel
      return
    fi
  done < <(awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "cgroup") print $5, $(i + 3) }' /proc/self/mountinfo)
  mnt=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo)
  if [ -n "$mnt" ] && grep -qw cpu "$mnt/cgroup.controllers" 2>/dev/null; then
    rel=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
    cg_version=2 cg_parent=$mnt$rel
    return
  fi
  die "no cgroup hierarchy with the cpu controller"
}
discover_cpu_cgroup
readonly bench_cg=$cg_parent/haco-bench-$$
mkdir "$bench_cg"
[ "$cg_version" = 1 ] || echo +cpu >"$bench_cg/cgroup.subtree_control"

# A child cgroup with the 30% quota; prints its path.
make_instance_cgroup() {
  local cg=$bench_cg/$1
  mkdir "$cg"
  if [ "$cg_version" = 1 ]; then
    echo $CFS_PERIOD_US >"$cg/cpu.cfs_period_us"
    echo $CFS_QUOTA_US >"$cg/cpu.cfs_quota_us"
  else
    echo "$CFS_QUOTA_US $CFS_PERIOD_US" >"$cg/cpu.max"
  fi
  echo "$cg"
}

# Kills every process in the cgroup (until none is left) and removes it.
remove_instance_cgroup() {
  local cg=$1 pids tries=0
  [ -d "$cg" ] || return 0
  while pids=$(cat "$cg/cgroup.procs" 2>/dev/null) && [ -n "$pids" ]; do
    kill -KILL $pids 2>/dev/null || true
    tries=$((tries + 1))
    [ $tries -lt 200 ] || { say "processes survive in $cg: $pids"; return 1; }
    sleep 0.05
  done
  rmdir "$cg"
}

remove_all_instance_cgroups() {
  local cg
  for cg in "$bench_cg"/*/; do
    [ -d "$cg" ] && remove_instance_cgroup "${cg%/}"
  done
  return 0
}

# --- work tree, haco-fleet fleets and cleanup ---------------------------------
readonly work=$(mktemp -d /tmp/haco-bench.XXXXXX)
# The containers' root users (host uids port*100) must reach their rootfs in it.
chmod 0755 "$work"
fleet_up=0
ready_waiter=

fleet() {
  HACO_PHP_IMAGE=$image HACO_ROOTFS_BASE=$work/b/rootfs \
    "$haco_fleet" --root "$work/b/state" --data-root "$work/b/data" "$@"
}

seed_fleet_up=0
seed_trees=()
seed_fleet() {
  "$haco_fleet" --root "$work/s/state" --data-root "$work/s/data" "$@"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -z "$ready_waiter" ] || kill "$ready_waiter" 2>/dev/null || true
  if [ "$fleet_up" = 1 ]; then
    fleet down --purge >/dev/null 2>&1 || say "haco-fleet down failed; state in $work/b"
  fi
  if [ "$seed_fleet_up" = 1 ]; then
    seed_fleet down --purge >/dev/null 2>&1 || say "haco-fleet down of the seed's fleet failed; state in $work/s"
  fi
  # The seed's trees this run created (none existed before it).
  local tree
  for tree in "${seed_trees[@]}"; do
    if [ -e "$tree" ]; then
      umount -l "$tree" 2>/dev/null || true
      rm -rf --one-file-system "$tree"
    fi
  done
  remove_all_instance_cgroups
  rmdir "$bench_cg" 2>/dev/null || say "could not remove $bench_cg"
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- readiness ----------------------------------------------------------------
# Waits until every port serves the phpinfo page. Every 50 ms the listening
# sockets are read from /proc/net/tcp{,6} (in this shell: no process is
# started and no connection made); each port, once it listens, gets one
# fetcher that asks for the page once and waits for it (no short timeout: a
# page slow to come under load is waited for, not abandoned and asked again),
# asking again 100 ms later only when the answer was not the page. Each port
# goes to ready.csv as KEY,COUNT,PORT,ms since T0 when its fetcher got the
# page. Each instance serves the page about once, and the watching costs
# about 4 ms of CPU per round with 200 sockets listening.
wait_all_ready() {
  local first=$1 count=$2 key=$3 t0=$4 timeout_s=${5:-900} deadline port pid t0_us
  local -A fetched=()
  local fetchers=() listening=()
  t0_us=$(( ${t0%.*} * 1000000 + 10#${t0#*.} / 1000 ))
  deadline=$(( ${EPOCHREALTIME%.*} + timeout_s ))
  while [ ${#fetched[@]} -lt "$count" ]; do
    read_listening_ports
    for port in "${listening[@]}"; do
      [ "$port" -ge "$first" ] && [ "$port" -lt $((first + count)) ] || continue
      [ -n "${fetched[$port]:-}" ] && continue
      fetched[$port]=1
      fetch_page_once_ready "$port" "$key,$count" "$t0_us" "$deadline" &
      fetchers+=($!)
    done
    [ ${#fetched[@]} -lt "$count" ] || break
    if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
      local missing=()
      for ((port = first; port < first + count; port++)); do
        [ -n "${fetched[$port]:-}" ] || missing+=("$port")
      done
      die "ports not listening after ${timeout_s}s: ${missing[*]}"
    fi
    sleep 0.05
  done
  for pid in "${fetchers[@]}"; do wait "$pid" || die "waiting for the pages failed"; done
}

# Sets `listening` (the caller's local) to the TCP ports in LISTEN state.
read_listening_ports() {
  local table slot address remote state rest
  listening=()
  for table in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$table" ] || continue
    while read -r slot address remote state rest; do
      [ "$state" = 0A ] && listening+=($((16#${address##*:})))
    done <"$table"
  done
  return 0
}

# One port's fetcher (see wait_all_ready): the page, then its row in ready.csv.
fetch_page_once_ready() {
  local port=$1 key=$2 t0_us=$3 deadline=$4 code size took_us
  while :; do
    read -r code size < <(curl -s -o /dev/null -m 300 -w '%{http_code} %{size_download}\n' \
                            "http://127.0.0.1:$port/" 2>/dev/null || echo "000 0")
    took_us=$(( ${EPOCHREALTIME/./} - t0_us ))
    if [ "$code" = 200 ] && [ "${size%.*}" -gt 20000 ]; then
      printf '%s,%s,%d.%d\n' "$key" "$port" $((took_us / 1000)) $((took_us % 1000 / 100)) \
        >>"$out_dir/ready.csv"
      return 0
    fi
    if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
      say "port $port does not serve the phpinfo page (last answer: HTTP $code, $size bytes)"
      return 1
    fi
    sleep 0.1
  done
}

# wait_all_ready in the background from the start of a run, while the method
# launches its instances; finish_ready_wait returns once every port is ready.
start_ready_wait() {
  ( trap - EXIT INT TERM; wait_all_ready "$@" ) &
  ready_waiter=$!
}
finish_ready_wait() {
  local pid=$ready_waiter
  wait "$pid" || { ready_waiter=; die "waiting for the ports failed"; }
  ready_waiter=
}

# One row of runs.csv: METHOD,N,total seconds,PSS kB (may be empty).
record_run() { echo "$1,$2,$3,${4:-}" >>"$out_dir/runs.csv"; }

# The page really is phpinfo (checked once everything answered, untimed).
check_pages() {
  local first=$1 count=$2 port page
  for ((port = first; port < first + count; port++)); do
    page=$(curl -s -m 5 "http://127.0.0.1:$port/" || true)
    [[ $page == *"PHP Version"* ]] || die "port $port does not serve the phpinfo page"
  done
}

wait_ports_free() {
  local first=$1 count=$2 tries=0
  while ss -Htln "sport >= :$first and sport < :$((first + count))" | grep -q .; do
    tries=$((tries + 1))
    [ $tries -lt 200 ] || die "ports $first..$((first + count - 1)) stay in use"
    sleep 0.05
  done
}

# --- memory -------------------------------------------------------------------
# Sums of Rss and Pss (kB) over the given pids, from /proc/PID/smaps_rollup.
rss_pss_kb() {
  local pid rss=0 pss=0 r p
  for pid in "$@"; do
    read -r r p < <(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r + 0, p + 0 }' \
                    "/proc/$pid/smaps_rollup" 2>/dev/null || echo "0 0")
    rss=$((rss + r)) pss=$((pss + p))
  done
  echo "$rss $pss"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# All processes of our instance cgroups whose command is Apache.
apache_pids_in_cgroups() {
  local cg pid
  for cg in "$bench_cg"/*/; do
    for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = apache2 ] && echo "$pid"
    done
  done
  return 0
}

# All descendants of the given pids (not the pids themselves).
descendants() {
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2; order[NR] = $1 }
    END {
      do { grew = 0
        for (i = 1; i <= NR; i++) { p = order[i]
          if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; out[p] = 1; grew = 1 } }
      } while (grew)
      for (p in out) print p
    }'
}

# --- the three ways -------------------------------------------------------------
declare -A result=()

# a: the seed's loop. util-linux unshare writes the user mapping through
# newuidmap/newgidmap, setuid helpers that let a user map the ranges
# /etc/subuid grants; root may write any map itself, so a two-line writer of
# /proc/PID/{uid,gid}_map takes their place (first in unshare's PATH), and
# neither the uidmap package nor /etc/subuid entries are needed.
idmap_dir=
prepare_idmap_writer() {
  [ -z "$idmap_dir" ] || return 0
  idmap_dir=$work/idmap
  mkdir -p "$idmap_dir"
  cat >"$idmap_dir/newuidmap" <<'EOF'
#!/bin/sh
# newuidmap|newgidmap PID INSIDE OUTSIDE COUNT [...]: as root, write the map.
pid=$1; shift
case $(basename "$0") in newuidmap) file=uid_map ;; *) file=gid_map ;; esac
printf '%s %s %s\n' "$@" >"/proc/$pid/$file"
EOF
  chmod 0755 "$idmap_dir/newuidmap"
  ln -s newuidmap "$idmap_dir/newgidmap"
}

run_seed_loop() {
  local first=$1 count=$2 port dir cg host_id t0 t1
  prepare_idmap_writer
  mkdir -p "$work/a"
  t0=$(now)
  start_ready_wait "$first" "$count" a "$t0"
  for ((port = first; port < first + count; port++)); do
    dir=$work/a/haconiwa-test-$port
    host_id=$((port * ID_RANGE))
    mkdir -p "$dir"
    tar xzf "$image" -C "$dir"
    chown -R "$host_id:$host_id" "$dir"
    cg=$(make_instance_cgroup "a-$port")
    PATH=${idmap_dir:+$idmap_dir:}$PATH setsid -f sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' \
      sh "$cg" unshare --user --map-users="$host_id,0,$ID_RANGE" --map-groups="$host_id,0,$ID_RANGE" \
      --setuid 0 --setgid 0 --pid --fork --kill-child --mount --ipc --uts --root="$dir" \
      /usr/bin/env APACHE_PORT="$port" /usr/local/bin/start-apache \
      </dev/null >"$work/a/log-$port" 2>&1
    sleep 0.01
  done
  finish_ready_wait
  t1=$(now)
  check_pages "$first" "$count"
  result[a,$count]=$(elapsed "$t0" "$t1")
  say "N=$count a: ${result[a,$count]} s"
  read -r _ result[a_pss,$count] < <(rss_pss_kb $(apache_pids_in_cgroups))
  say "N=$count a: PSS of the instances $(mb "${result[a_pss,$count]}")"
  record_run a "$count" "${result[a,$count]}" "${result[a_pss,$count]}"
  remove_all_instance_cgroups
  rm -rf "$work/a"
  wait_ports_free "$first" "$count"
}

run_floor() {
  local first=$1 count=$2 port cg tree=$work/c/tree t0 t1 run
  mkdir -p "$tree"
  tar xzf "$image" -C "$tree"
  t0=$(now)
  start_ready_wait "$first" "$count" c "$t0"
  for ((port = first; port < first + count; port++)); do
    cg=$(make_instance_cgroup "c-$port")
    run=/tmp/apache-$port
    setsid -f sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' \
      sh "$cg" chroot "$tree" /usr/bin/env APACHE_PORT="$port" APACHE_RUN_DIR="$run/run" \
      APACHE_PID_FILE="$run/run/apache2.pid" APACHE_LOCK_DIR="$run/lock" APACHE_LOG_DIR="$run/log" \
      /usr/local/bin/start-apache </dev/null >"$work/c/log-$port" 2>&1
  done
  finish_ready_wait
  t1=$(now)
  check_pages "$first" "$count"
  result[c,$count]=$(elapsed "$t0" "$t1")
  say "N=$count c: ${result[c,$count]} s"
  read -r _ result[c_pss,$count] < <(rss_pss_kb $(apache_pids_in_cgroups))
  say "N=$count c: PSS of the instances $(mb "${result[c_pss,$count]}")"
  record_run c "$count" "${result[c,$count]}" "${result[c_pss,$count]}"
  remove_all_instance_cgroups
  rm -rf "$work/c"
  wait_ports_free "$first" "$count"
}

# b: haco-fleet up; `label` is cold (fresh data root: the image is read and
# laid down for the first time) or warm (the image cache of the previous run).
run_fleet() {
  local first=$1 count=$2 label=$3 t0 t1
  [ "$label" = warm ] || rm -rf "$work/b"
  mkdir -p "$work/b"
  t0=$(now)
  start_ready_wait "$first" "$count" "b_$label" "$t0"
  fleet_up=1
  fleet up "${up_args[@]}" --ports "$first-$((first + count - 1))" "$REPO/templates/phpinfo.haco" \
    >"$work/b/up-$label-$count.log" 2>&1 || { cat "$work/b/up-$label-$count.log" >&2; die "haco-fleet up failed"; }
  finish_ready_wait
  t1=$(now)
  check_pages "$first" "$count"
  result[b_$label,$count]=$(elapsed "$t0" "$t1")
  say "N=$count b $label: ${result[b_$label,$count]} s"
  if [ "$label" = warm ]; then
    # haco-fleet's own processes: the supervisor and its children that are not
    # instances (the spawners and the log writer); containers are the
    # supervisor's children too.
    local json supervisor instances own
    json=$(fleet ps --json)
    supervisor=$(jq -r '.fleets[0].supervisor.pid' <<<"$json")
    instances=$(jq -r '.fleets[0].instances[].pid // empty' <<<"$json")
    own=$(ps -e -o pid=,ppid= | awk -v sup="$supervisor" -v inst="$(echo $instances)" '
            BEGIN { n = split(inst, a, " "); for (i = 1; i <= n; i++) skip[a[i]] = 1 }
            $2 == sup && !($1 in skip) { print $1 }')
    result[b_own,$count]=$(rss_pss_kb "$supervisor" $own)
    result[b_own_n,$count]=$(( 1 + $(wc -w <<<"$own") ))
    read -r _ result[b_pss,$count] < <(rss_pss_kb $instances $(descendants $instances))
    say "N=$count b: PSS of the instances $(mb "${result[b_pss,$count]}"), haco-fleet's own (RSS PSS kB): ${result[b_own,$count]}"
  fi
  record_run "b_$label" "$count" "${result[b_$label,$count]}" "${result[b_pss,$count]:-}"
  fleet down --purge >"$work/b/down-$label-$count.log" 2>&1 || die "haco-fleet down failed"
  fleet_up=0
  wait_ports_free "$first" "$count"
}

# s and w: the seed's own definition. `bootstrap` is auto (s) or as-written
# (w); `label` cold (fresh data root) or warm (the image cache of the previous
# run). Its trees are at /var/lib/haconiwa/haconiwa-test-PORT.
run_seed_fleet() {
  local first=$1 count=$2 label=$3 bootstrap=$4 key=$5 port tree t0 t1
  for ((port = first; port < first + count; port++)); do
    tree=/var/lib/haconiwa/haconiwa-test-$port
    [ ! -e "$tree" ] || die "$tree exists: the seed's definition would reuse it (remove it first)"
    seed_trees+=("$tree")
  done
  [ "$label" = warm ] || rm -rf "$work/s"
  mkdir -p "$work/s"
  t0=$(now)
  start_ready_wait "$first" "$count" "${key}_$label" "$t0"
  seed_fleet_up=1
  seed_fleet up --bootstrap "$bootstrap" --timeout 900 "${up_args[@]}" --ports "$first-$((first + count - 1))" \
    "$seed_definition" >"$work/s/up-$key-$label-$count.log" 2>&1 ||
    { cat "$work/s/up-$key-$label-$count.log" >&2; die "haco-fleet up of the seed's definition failed"; }
  finish_ready_wait
  t1=$(now)
  check_pages "$first" "$count"
  result[${key}_$label,$count]=$(elapsed "$t0" "$t1")
  record_run "${key}_$label" "$count" "${result[${key}_$label,$count]}"
  say "N=$count $key $label: ${result[${key}_$label,$count]} s ($(grep -m1 -o 'bootstrap: [^(]*' "$work/s/up-$key-$label-$count.log" || echo 'no bootstrap line'))"
  seed_fleet down --purge >"$work/s/down-$key-$label-$count.log" 2>&1 || die "haco-fleet down of the seed's fleet failed"
  seed_fleet_up=0
  wait_ports_free "$first" "$count"
}

say "image $image ($(du -h "$image" | cut -f1)); cgroup v$cg_version under $cg_parent; modes $modes"
[ -z "$seed_image" ] || say "seed image $seed_image ($(du -h "$seed_image" | cut -f1))"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# What one plain extraction of the image costs on this machine, now: a cold
# `up` should add no more than this to a warm one (the image is read once).
plain_tar=
if has_mode b; then
  mkdir -p "$work/plain-tar"
  t0=$(now)
  tar xzf "$image" -C "$work/plain-tar"
  t1=$(now)
  plain_tar=$(elapsed "$t0" "$t1")
  rm -rf "$work/plain-tar"
  say "one plain tar xzf of the image: ${plain_tar} s"
fi
for n in "${counts[@]}"; do
  wait_ports_free "$base_port" "$n"
  if has_mode c; then say "N=$n c (floor), load $(loadavg)";            run_floor "$base_port" "$n"; fi
  if has_mode a; then say "N=$n a (seed loop), load $(loadavg)";        run_seed_loop "$base_port" "$n"; fi
  if has_mode b; then say "N=$n b (haco-fleet, cold), load $(loadavg)"; run_fleet "$base_port" "$n" cold
                      say "N=$n b (haco-fleet, warm), load $(loadavg)"; run_fleet "$base_port" "$n" warm; fi
  if has_mode s; then say "N=$n s (seed definition, cold), load $(loadavg)"
                      run_seed_fleet "$base_port" "$n" cold auto s
                      say "N=$n s (seed definition, warm), load $(loadavg)"
                      run_seed_fleet "$base_port" "$n" warm auto s; fi
  if has_mode w; then say "N=$n w (seed definition as written), load $(loadavg)"
                      run_seed_fleet "$base_port" "$n" cold as-written w; fi
done

secs() { [ -n "$1" ] && echo "${1}s" || echo -; }
printf '\n%6s %10s %10s %10s %10s %9s %9s %9s %9s\n' N "a seed" "b cold" "b warm" "c floor" \
  "a/b cold" "a/b warm" "b warm/c" "b cold/c"
for n in "${counts[@]}"; do
  a=${result[a,$n]:-} bc=${result[b_cold,$n]:-} bw=${result[b_warm,$n]:-} c=${result[c,$n]:-}
  printf '%6s %10s %10s %10s %10s %9s %9s %9s %9s\n' "$n" "$(secs "$a")" "$(secs "$bc")" "$(secs "$bw")" \
    "$(secs "$c")" \
    "$([ -n "$a" ] && [ -n "$bc" ] && ratio "$a" "$bc" || echo -)" \
    "$([ -n "$a" ] && [ -n "$bw" ] && ratio "$a" "$bw" || echo -)" \
    "$([ -n "$bw" ] && [ -n "$c" ] && ratio "$bw" "$c" || echo -)" \
    "$([ -n "$bc" ] && [ -n "$c" ] && ratio "$bc" "$c" || echo -)"
done
if [ -n "$plain_tar" ]; then
  printf '\none plain tar xzf of the image: %ss\n' "$plain_tar"
  for n in "${counts[@]}"; do
    bc=${result[b_cold,$n]:-} bw=${result[b_warm,$n]:-} c=${result[c,$n]:-}
    [ -n "$bc" ] && [ -n "$bw" ] || continue
    printf 'N=%s: cold - warm = %ss (%s of one plain tar xzf)' "$n" \
      "$(awk -v a="$bc" -v b="$bw" 'BEGIN { printf "%.2f", a - b }')" \
      "$(ratio "$(awk -v a="$bc" -v b="$bw" 'BEGIN { printf "%.3f", a - b }')" "$plain_tar")"
    [ -n "$c" ] && printf ', warm / floor = %s' "$(ratio "$bw" "$c")"
    printf '\n'
  done
fi
if has_mode s || has_mode w; then
  printf '\nthe seed'"'"'s definition (s: engine, w: as written) beside templates/phpinfo.haco (b)\n'
  printf '%6s %10s %10s %10s %10s %10s %10s %10s %10s\n' N "b cold" "s cold" "b warm" "s warm" "w" \
    "s/b cold" "s/b warm" "w/s warm"
  for n in "${counts[@]}"; do
    bc=${result[b_cold,$n]:-} bw=${result[b_warm,$n]:-} sc=${result[s_cold,$n]:-} sw=${result[s_warm,$n]:-}
    w=${result[w_cold,$n]:-}
    printf '%6s %10s %10s %10s %10s %10s %10s %10s %10s\n' "$n" "$(secs "$bc")" "$(secs "$sc")" "$(secs "$bw")" \
      "$(secs "$sw")" "$(secs "$w")" \
      "$([ -n "$sc" ] && [ -n "$bc" ] && ratio "$sc" "$bc" || echo -)" \
      "$([ -n "$sw" ] && [ -n "$bw" ] && ratio "$sw" "$bw" || echo -)" \
      "$([ -n "$w" ] && [ -n "$sw" ] && ratio "$w" "$sw" || echo -)"
  done
fi
echo
for n in "${counts[@]}"; do
  line="N=$n PSS of the instances' Apache processes:"
  [ -n "${result[a_pss,$n]:-}" ] && line+=" a $(mb "${result[a_pss,$n]}")"
  [ -n "${result[b_pss,$n]:-}" ] && line+=" b $(mb "${result[b_pss,$n]}")"
  [ -n "${result[c_pss,$n]:-}" ] && line+=" c $(mb "${result[c_pss,$n]}")"
  echo "$line"
  if [ -n "${result[b_own,$n]:-}" ]; then
    read -r rss pss <<<"${result[b_own,$n]}"
    echo "N=$n haco-fleet supervisor+spawners+log writer (${result[b_own_n,$n]} processes): RSS $(mb "$rss"), PSS $(mb "$pss")"
  fi
done

{ echo "key,value"
  echo "image,$image"
  [ -z "$plain_tar" ] || echo "plain_tar_s,$plain_tar"
  echo "modes,${modes//,/ }"
  echo "cpus,$(nproc)"
  echo "kernel,$(uname -r)"
  echo "date,$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out_dir/meta.csv"
if "$SCRIPT_DIR/startup-results.sh" "$out_dir"; then
  echo
  echo "results: $out_dir/results.json $out_dir/results.csv $out_dir/startup-cdf.svg"
else
  say "could not write the results from $out_dir/ready.csv and runs.csv"
fi
