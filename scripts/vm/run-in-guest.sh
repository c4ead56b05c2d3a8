#!/usr/bin/env bash
# Boots the Debian 12 guest of scripts/vm/build-guest.sh under QEMU, shares
# host directories into it over 9p at the same absolute paths, runs one
# command there as root and exits with its status. See docs/vm.md.
#
#   scripts/vm/run-in-guest.sh [OPTION...] (--repo | DIR) [--] COMMAND [ARG...]
#
#   --repo            share this repository (its source and build/ trees)
#   DIR               share DIR; COMMAND runs in it
#   --share DIR       share another directory too (repeatable), e.g. a
#                     build tree outside the repository
#   --copy FILE=PATH  copy FILE onto the guest's own disk at PATH before
#                     COMMAND runs (repeatable)
#   --timeout S       stop the guest after S seconds (default 1800)
#
# COMMAND runs as root in the guest's haco-vm-run.service (Delegate=yes) once
# systemd reports the boot finished, with HACO_VM_GUEST=1; its output is
# streamed here. Shares are read-write (9p, security_model=passthrough); the
# guest's own disk is a throw-away qcow2 overlay of the image, so every run
# starts from the same state.
# Exit: COMMAND's status; 124 on timeout; 125 when the guest stopped without
# reporting one (the console's last lines are printed); 2 on a usage error.
# Env: HACO_VM_DIR (/var/tmp/haco-fleet-vm), HACO_VM_CPUS (2), HACO_VM_MEM
#      (4096, MiB), HACO_VM_ACCEL (tcg, or kvm where nested KVM runs a stock
#      kernel), HACO_VM_CPU (-cpu model), HACO_VM_APPEND (kernel arguments),
#      HACO_VM_KEEP=1 (keep the run directory even on success),
#      HACO_VM_9P_CACHE (the shares' 9p cache mode, default loose).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
vm_dir=${HACO_VM_DIR:-/var/tmp/haco-fleet-vm}

usage() { sed -n '6,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "run-in-guest: $*" >&2; exit 2; }

timeout=1800
main_dir=
shares=()
copies=()
while [ $# -gt 0 ]; do
  case $1 in
    --repo) main_dir=$repo ;;
    --share) [ $# -ge 2 ] || usage; shares+=("$2"); shift ;;
    --copy) [ $# -ge 2 ] && [[ $2 == *=/* ]] || die "--copy needs FILE=/ABSOLUTE/PATH"; copies+=("$2"); shift ;;
    --timeout) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || die "--timeout needs seconds"; timeout=$2; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$main_dir" ] || break; main_dir=$1 ;;
  esac
  shift
done
[ -n "$main_dir" ] && [ $# -gt 0 ] || usage
[ -d "$main_dir" ] || die "$main_dir is not a directory"
main_dir=$(cd "$main_dir" && pwd)
all_shares=("$main_dir")
for s in "${shares[@]}"; do
  [ -d "$s" ] || die "$s is not a directory"
  all_shares+=("$(cd "$s" && pwd)")
done

case "${HACO_VM_ACCEL:-tcg}" in
  tcg) accel=(-accel tcg,thread=multi -cpu "${HACO_VM_CPU:-max}") ;;
  kvm) accel=(-accel kvm -cpu "${HACO_VM_CPU:-host}") ;;
  *) die "HACO_VM_ACCEL must be tcg or kvm" ;;
esac
command -v qemu-system-x86_64 >/dev/null && command -v qemu-img >/dev/null \
  || die "qemu-system-x86_64 or qemu-img missing: run scripts/install-deps.sh"

image=$("$here/build-guest.sh" | tail -1)

mkdir -p "$vm_dir/runs"
run=$(mktemp -d "$vm_dir/runs/run.XXXXXX")
ctl=$run/ctl
mkdir -p "$ctl/files"
qemu-img create -q -f qcow2 -F raw -b "$image/disk.img" "$run/disk.qcow2"

# The control share: what to mount, copy and run; what came back.
virtfs=(-virtfs "local,path=$ctl,mount_tag=ctl,security_model=passthrough,multidevs=remap,id=ctl")
: >"$ctl/shares"
for i in "${!all_shares[@]}"; do
  echo "s$i ${all_shares[$i]}" >>"$ctl/shares"
  virtfs+=(-virtfs "local,path=${all_shares[$i]},mount_tag=s$i,security_model=passthrough,multidevs=remap,id=s$i")
done
: >"$ctl/copies"
for i in "${!copies[@]}"; do
  src=${copies[$i]%%=*} dest=${copies[$i]#*=}
  [ -f "$src" ] || die "--copy: $src is not a file"
  ln "$src" "$ctl/files/$i" 2>/dev/null || cp -p "$src" "$ctl/files/$i"
  echo "$i $dest" >>"$ctl/copies"
done
echo "$main_dir" >"$ctl/cwd"
echo "${HACO_VM_9P_CACHE:-loose}" >"$ctl/cache"
printf '%q ' "$@" >"$ctl/command"
echo >>"$ctl/command"
: >"$ctl/output.log"

append="root=/dev/vda rw console=ttyS0 quiet mitigations=off panic=-1 ${HACO_VM_APPEND:-}"
start=$(date +%s.%N)
qemu-system-x86_64 -name haco-fleet-vm -machine q35 "${accel[@]}" \
  -smp "${HACO_VM_CPUS:-2}" -m "${HACO_VM_MEM:-4096}" \
  -nodefaults -display none -no-reboot \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$append" \
  -drive "file=$run/disk.qcow2,format=qcow2,if=virtio,cache=unsafe,discard=unmap" \
  "${virtfs[@]}" \
  -device virtio-rng-pci -nic none \
  -serial "file:$run/console.log" </dev/null &
qemu=$!
tail -n +1 -F --pid="$qemu" "$ctl/output.log" 2>/dev/null &
follower=$!
stop_qemu() {
  kill "$qemu" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 "$qemu" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$qemu" 2>/dev/null || true
}
trap 'stop_qemu; kill "$follower" 2>/dev/null; rm -rf "$run"; exit 130' INT TERM

timed_out=0
command_started=
while kill -0 "$qemu" 2>/dev/null; do
  if [ -z "$command_started" ] && [ -e "$ctl/started" ]; then command_started=$(date +%s.%N); fi
  if [ "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print (b - a >= 0 + '"$timeout"') }')" = 1 ]; then
    timed_out=1
    echo "run-in-guest: timeout after $timeout s; stopping the guest" >&2
    stop_qemu
    break
  fi
  sleep 0.2
done
wait "$qemu" 2>/dev/null || true
wait "$follower" 2>/dev/null || true
end=$(date +%s.%N)
rm -f "$run/disk.qcow2"
rm -rf "$ctl/files"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
if [ "$timed_out" = 0 ] && [ -s "$ctl/status" ]; then
  rc=$(cat "$ctl/status")
  echo "run-in-guest: exit status $rc; command started ${command_started:+$(secs "$start" "$command_started") s }after qemu start" \
       "(guest uptime $(cat "$ctl/started" 2>/dev/null || echo '?') s), $(secs "$start" "$end") s in all" >&2
  if [ "$rc" = 0 ] && [ "${HACO_VM_KEEP:-0}" != 1 ]; then rm -rf "$run"; else echo "run-in-guest: logs kept in $run" >&2; fi
  exit "$rc"
fi
echo "run-in-guest: the guest reported no exit status ($(secs "$start" "$end") s); last console lines ($run/console.log):" >&2
tail -n 40 "$run/console.log" >&2 2>/dev/null || true
[ "$timed_out" = 1 ] && exit 124
exit 125
