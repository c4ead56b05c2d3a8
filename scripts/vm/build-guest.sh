#!/usr/bin/env bash
# Builds the Debian 12 guest that scripts/vm/run-in-guest.sh boots: a stock
# bookworm userland with systemd 252 as PID 1 (default unified cgroup v2
# hierarchy), Debian's 6.1 kernel, and the libraries and tools the project's
# binaries and tests need (scripts/vm/guest/packages). See docs/vm.md.
#
#   scripts/vm/build-guest.sh [--force]
#
# The image is cached in $HACO_VM_DIR (default /var/tmp/haco-fleet-vm) under a
# key hashed from this script, scripts/vm/guest/ and the host's apt sources
# for bookworm: a change to any of them builds a new image, and the old ones
# are removed. The last line printed is the image's directory, holding
# disk.img (raw ext4 root), vmlinuz and initrd.img.
# Env: HACO_VM_DIR, HACO_VM_DISK_SIZE (sparse, default 8G).
set -euo pipefail

readonly SUITE=bookworm
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest=$here/guest
vm_dir=${HACO_VM_DIR:-/var/tmp/haco-fleet-vm}
disk_size=${HACO_VM_DISK_SIZE:-8G}

die() { echo "build-guest: $*" >&2; exit 1; }
say() { echo "build-guest: $*" >&2; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "usage: $0 [--force]" ;;
esac

# The host's Debian sources for the suite. The guest gets the same files at
# the same paths, so that image builders run in the guest (which hash them
# into their cache keys) find images built on the host.
mirror_files=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -Eq "(^|[[:space:]])$SUITE([[:space:]]|$)" "$f" && mirror_files+=("$f")
done
[ ${#mirror_files[@]} -gt 0 ] || die "no apt source for $SUITE in /etc/apt"

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$guest/packages")
key=$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
         (cd "$guest" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
         for f in "${mirror_files[@]}"; do echo "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)
image_dir=$vm_dir/debian12-$key

image_ready() { [ -s "$image_dir/disk.img" ] && [ -s "$image_dir/vmlinuz" ] && [ -s "$image_dir/initrd.img" ]; }

if [ "$force" = 0 ] && image_ready; then
  say "cached ($image_dir)"
  echo "$image_dir"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap --mode=root)"
for tool in mmdebstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done

mkdir -p "$vm_dir"
# One build at a time; a second caller waits and then finds the image.
exec 9>"$vm_dir/build.lock"
flock 9
if [ "$force" = 0 ] && image_ready; then
  say "cached ($image_dir, built meanwhile)"
  echo "$image_dir"
  exit 0
fi

start=$(date +%s.%N)
work=$(mktemp -d "$vm_dir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -m 0755 "$root"

# Customize hooks get the root as $1. The guest's /etc/apt holds exactly the
# host's source files for the suite.
copy_sources='rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*'
for f in "${mirror_files[@]}"; do
  copy_sources+="; install -D -m 0644 '$f' \"\$1$f\""
done

# The initramfs needs only what finds the root on the virtio disk; written
# before the kernel is installed, so that it is built once, small.
initramfs_config='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
  printf "MODULES=list\nCOMPRESS=zstd\n" > "$1/etc/initramfs-tools/conf.d/haco-vm.conf"
  printf "virtio_pci\nvirtio_blk\next4\n" > "$1/usr/share/initramfs-tools/modules.d/haco-vm"'

# Drivers for hardware a QEMU guest does not have: a third of the image, and
# of the time spent unpacking and copying it.
module_excludes=()
for dir in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
           drivers/iio drivers/staging drivers/comedi sound; do
  module_excludes+=(--dpkgopt="path-exclude=/lib/modules/*/kernel/$dir/*")
done

say "mmdebstrap $SUITE with ${#packages[@]} packages from ${mirror_files[*]}"
mmdebstrap --quiet --mode=root --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "${module_excludes[@]}" \
  --essential-hook="$initramfs_config" \
  --customize-hook="install -m 0755 '$guest/haco-vm-run' \"\$1/usr/local/sbin/haco-vm-run\"" \
  --customize-hook="install -m 0644 '$guest/haco-vm-run.service' \"\$1/etc/systemd/system/haco-vm-run.service\"" \
  --customize-hook='chroot "$1" systemctl --quiet enable haco-vm-run.service' \
  --customize-hook='chroot "$1" systemctl --quiet set-default multi-user.target' \
  --customize-hook='chroot "$1" systemctl --quiet mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer serial-getty@ttyS0.service' \
  --customize-hook='chroot "$1" passwd --quiet --delete root' \
  --customize-hook='echo haco-vm > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 haco-vm\n" > "$1/etc/hosts"' \
  --customize-hook='echo "/dev/vda / ext4 rw,noatime 0 0" > "$1/etc/fstab"' \
  --customize-hook='tr -d - < /proc/sys/kernel/random/uuid > "$1/etc/machine-id"' \
  --customize-hook="$copy_sources" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$root" "${mirror_files[@]}"
bootstrapped=$(date +%s.%N)

kernel=$(ls "$root/lib/modules" | sort -V | tail -1)
mkdir -p "$work/image"
cp "$root/boot/vmlinuz-$kernel" "$work/image/vmlinuz"
cp "$root/boot/initrd.img-$kernel" "$work/image/initrd.img"
truncate -s "$disk_size" "$work/image/disk.img"
mkfs.ext4 -q -F -L haco-vm -d "$root" "$work/image/disk.img"
echo "$kernel" >"$work/image/kernel-version"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$work/image/packages.txt"
rm -rf "$root"
done_at=$(date +%s.%N)

rm -rf "$image_dir"
mv "$work/image" "$image_dir"
# Images under other keys are stale; a guest still running one keeps its
# open file.
find "$vm_dir" -mindepth 1 -maxdepth 1 -type d -name 'debian12-*' ! -path "$image_dir" -exec rm -rf {} +

took() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
say "built kernel $kernel, systemd $(awk '$1 == "systemd" { print $2 }' "$image_dir/packages.txt") in $(took "$start" "$done_at") s" \
    "(mmdebstrap $(took "$start" "$bootstrapped") s, image $(took "$bootstrapped" "$done_at") s):" \
    "$(du -sh --apparent-size "$image_dir/disk.img" | cut -f1) disk, $(du -sh "$image_dir/disk.img" | cut -f1) used"
echo "$image_dir"
