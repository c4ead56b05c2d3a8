#!/usr/bin/env bash
# Installs the .deb of scripts/package.sh in a fresh Debian 12 (bookworm)
# chroot made with mmdebstrap (minbase), with `apt-get install ./haco-fleet_*.deb`
# fetching its dependencies from the archive, then inside the chroot runs
# haco-fleet --version, expands both installed templates, builds the busybox
# image with the installed builder and brings up a fleet of two busybox
# instances from the installed template, checks each serves its page, and
# takes it down. Takes about 3 minutes, most of it mmdebstrap and apt-get
# (not part of scripts/test.sh). Run as root.
#   scripts/test-package.sh [DEB]        (default: build it with scripts/package.sh)
#   scripts/test-package.sh --guest [DEB]
# --guest installs it in the Debian 12 guest of scripts/vm/ instead (systemd
# as PID 1, cgroup v2 only; no network, so with the dependencies its image
# already holds: `apt-get install --no-install-recommends`), runs the same
# checks there (the supervisor is then a systemd unit), then starts the fleet
# through the installed unit template (`systemctl start haco-fleet@NAME`),
# stops it, and removes the package with `apt-get purge`, checking that its
# files are gone. About 2 minutes.
# HACO_TEST_PORTS (default 47101-47102) are the fleet's ports: the chroot
# shares the host's network, so they must be free there.
# Everything is removed on exit: the fleet, every mount (all of them made in
# a private mount namespace) and the chroot.
set -euo pipefail
readonly SUITE=bookworm
top=$(cd "$(dirname "$0")/.." && pwd)
self=$(realpath "$0")
ports=${HACO_TEST_PORTS:-47101-47102}

die() { echo "test-package: $*" >&2; exit 1; }
say() { echo "test-package: $*" >&2; }

# ---------------------------------------------------------------------------
# Inside a private mount namespace: the chroot becomes the namespace's root
# by pivot_root (in a mere chroot the kernel refuses user namespaces, and
# its / is no mount point), with its own /proc and the host's /sys and /dev.
# All these mounts end with the namespace.
# ---------------------------------------------------------------------------
if [ "${1:-}" = --in-namespace ]; then
  root=$2
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mkdir -p "$root/.old-root"
  cd "$root"
  pivot_root . .old-root
  umount -l /.old-root
  rmdir /.old-root
  exec /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 HACO_TEST_PORTS="$ports" \
    /bin/bash /tmp/test-package.sh --checks
fi

# The checks, run from the package's root.
if [ "${1:-}" = --checks ]; then
  first=${ports%%-*}
  last=${ports##*-}
  # Whatever happens below, no fleet stays up.
  trap 'haco-fleet down --all --purge >/dev/null 2>&1 || true' EXIT
  trap 'exit 130' INT TERM

  say "inside: haco-fleet --version"
  version=$(haco-fleet --version)
  echo "  $version"
  [[ $version == "haco-fleet "[0-9]* ]] || die "--version printed '$version'"

  for pair in busybox-httpd:busybox phpinfo:phpinfo; do
    template=/usr/share/haco-fleet/templates/${pair%%:*}.haco
    say "inside: haco-fleet expand --ports $ports $template"
    out=$(haco-fleet expand --ports "$ports" "$template")
    [ "$(grep -cE "^${pair#*:}-($first|$last) " <<<"$out")" -eq 2 ] || die "expand did not list both instances: $out"
  done

  say "inside: /usr/share/haco-fleet/scripts/build-busybox-image.sh"
  image=$(/usr/share/haco-fleet/scripts/build-busybox-image.sh)
  [ "$image" = /var/lib/haco-fleet/images/busybox.tar.gz ] || die "the image went to $image, not where the template reads"

  say "inside: haco-fleet up --ports $ports /usr/share/haco-fleet/templates/busybox-httpd.haco"
  haco-fleet up --ports "$ports" --timeout 60 /usr/share/haco-fleet/templates/busybox-httpd.haco
  haco-fleet ps
  for port in "$first" "$last"; do
    page=$(busybox wget -q -O - "http://127.0.0.1:$port/") || die "no page on port $port"
    grep -q 'served by busybox httpd' <<<"$page" || die "port $port served: $page"
    echo "  port $port serves the busybox page"
  done
  say "inside: haco-fleet down --purge"
  haco-fleet down --purge
  trap - EXIT
  exit 0
fi

# In the guest (--guest): install offline, the checks, the unit template,
# then purge.
if [ "${1:-}" = --in-guest ]; then
  deb=$2
  cd "$(dirname "$deb")"
  say "guest: apt-get install --no-install-recommends ./$(basename "$deb")"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "./$(basename "$deb")" \
    >/tmp/apt-get-install.log 2>&1 || { tail -n 30 /tmp/apt-get-install.log >&2; die "apt-get install failed"; }
  dpkg-query -W -f='  installed ${Package} ${Version} (${Status})\n' haco-fleet
  HACO_TEST_PORTS=$ports bash "$0" --checks

  first=${ports%%-*}
  last=${ports##*-}
  say "guest: systemctl start haco-fleet@pkgtest (the installed unit template)"
  mkdir -p /etc/haco-fleet
  printf 'HACO_FLEET_PORTS=%s\nHACO_FLEET_DEFINITION=%s\n' "$ports" \
    /usr/share/haco-fleet/templates/busybox-httpd.haco >/etc/haco-fleet/pkgtest.env
  trap 'systemctl stop haco-fleet@pkgtest 2>/dev/null; haco-fleet down --all --purge >/dev/null 2>&1 || true' EXIT
  systemctl start haco-fleet@pkgtest || { journalctl -u haco-fleet@pkgtest --no-pager | tail -n 20 >&2; die "the unit did not start"; }
  echo "  $(systemctl show -p ActiveState -p StatusText haco-fleet@pkgtest | paste -sd' ')"
  for port in "$first" "$last"; do
    busybox wget -q -O - "http://127.0.0.1:$port/" | grep -q 'served by busybox httpd' || die "port $port serves no page under the unit"
  done
  echo "  both ports serve their page under haco-fleet@pkgtest"
  systemctl stop haco-fleet@pkgtest
  state=$(systemctl show -p ActiveState --value haco-fleet@pkgtest)
  [ "$state" = inactive ] || die "haco-fleet@pkgtest is $state after stop"
  haco-fleet down --name pkgtest --purge
  trap - EXIT

  say "guest: apt-get purge haco-fleet"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q haco-fleet >/tmp/apt-get-purge.log 2>&1 ||
    { tail -n 30 /tmp/apt-get-purge.log >&2; die "apt-get purge failed"; }
  for path in /usr/bin/haco-fleet /usr/share/haco-fleet /lib/systemd/system/haco-fleet@.service \
              /usr/lib/systemd/system/haco-fleet@.service /usr/share/man/man1/haco-fleet.1.gz; do
    [ ! -e "$path" ] || die "$path is left after apt-get purge"
  done
  echo "  the package's files are gone"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap --mode=root, chroot, mounts)"
in_guest=0
if [ "${1:-}" = --guest ]; then in_guest=1; shift; fi
command -v mmdebstrap >/dev/null || [ $in_guest = 1 ] || die "mmdebstrap missing: run scripts/install-deps.sh"
start=$(date +%s)

if [ $# -ge 1 ]; then
  deb=$(realpath "$1")
else
  say "building the package (scripts/package.sh)"
  deb=$("$top/scripts/package.sh" | tail -n 1)
fi
[ -f "$deb" ] || die "no package at $deb"

if [ $in_guest = 1 ]; then
  share=$(mktemp -d /tmp/haco-package-guest.XXXXXX)
  trap 'rm -rf "$share"' EXIT
  status=0
  "$top/scripts/vm/run-in-guest.sh" --timeout 900 \
    --copy "$deb=/root/$(basename "$deb")" --copy "$self=/root/test-package.sh" \
    "$share" -- env HACO_TEST_PORTS="$ports" bash /root/test-package.sh --in-guest "/root/$(basename "$deb")" ||
    status=$?
  say "$([ $status -eq 0 ] && echo passed || echo FAILED) in the guest in $(( $(date +%s) - start )) s"
  exit $status
fi

# The Debian sources apt uses here (as scripts/build-php-image.sh finds them).
mirror_files=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -Eq "(^|[[:space:]])$SUITE([[:space:]]|$)" "$f" && mirror_files+=("$f")
done
[ ${#mirror_files[@]} -gt 0 ] || die "no apt source for $SUITE in /etc/apt"

root=$(mktemp -d /var/tmp/haco-package-test.XXXXXX)
cleanup() {
  local status=$? pid left
  # Processes still running in the chroot (a fleet a failed `down` left).
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] && kill -KILL "$pid" 2>/dev/null
  done
  left=$(awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo)
  if [ -n "$left" ]; then
    echo "test-package: mounts left under $root, not removed:" >&2
    echo "$left" >&2
    exit 1
  fi
  rm -rf --one-file-system "$root"
  say "$([ $status -eq 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "mmdebstrap --variant=minbase $SUITE -> $root"
mmdebstrap --quiet --mode=root --variant=minbase --skip=cleanup/apt/lists "$SUITE" "$root" "${mirror_files[@]}"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
cp "$self" "$root/tmp/test-package.sh"

say "inside: apt-get install ./$(basename "$deb")"
log=$root/tmp/apt-get-install.log
if ! chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c "cd /tmp && apt-get install -y -q ./$(basename "$deb")" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "apt-get install ./$(basename "$deb") failed"
fi
grep -E '^[0-9]+ upgraded' "$log" | sed 's/^/  /'
chroot "$root" dpkg-query -W -f='  installed ${Package} ${Version} (${Status})\n' haco-fleet busybox-static
chroot "$root" dpkg-query -W -f='${Status}' haco-fleet | grep -q 'install ok installed' || die "haco-fleet is not installed"
unit=$root/usr/lib/systemd/system/haco-fleet@.service
[ -f "$unit" ] || unit=$root/lib/systemd/system/haco-fleet@.service
exec_start=$(sed -nE 's/^ExecStart=([^ ]+) .*/\1/p' "$unit")
[ -x "$root$exec_start" ] || die "the unit's ExecStart ($exec_start) is not an installed program"

unshare --mount --propagation private -- "$self" --in-namespace "$root"
