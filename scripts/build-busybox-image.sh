#!/usr/bin/env bash
# Builds the tiny static test image: Debian's busybox-static with its applet
# symlinks, a root and a www user, and a page for busybox httpd.
#   scripts/build-busybox-image.sh [OUT]
# OUT defaults to /var/lib/haco-fleet/images/busybox.tar.gz, where
# templates/busybox-httpd.haco reads it; tests pass one in their build tree.
# Prints the image's path. A second run with an up-to-date image does nothing.
set -euo pipefail

out="${1:-/var/lib/haco-fleet/images/busybox.tar.gz}"
busybox=/bin/busybox

if [ ! -x "$busybox" ] || ! "$busybox" --list-full >/dev/null 2>&1; then
  echo "build-busybox-image: $busybox missing; run scripts/install-deps.sh (busybox-static)" >&2
  exit 1
fi

if [ -s "$out" ] && [ "$out" -nt "$busybox" ] && [ "$out" -nt "${BASH_SOURCE[0]}" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
stage="$(mktemp -d "${TMPDIR:-/tmp}/haco-busybox-image.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

chmod 0755 "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,run,root,var/www,www}
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
install -m 0755 "$busybox" "$stage/bin/busybox"
while read -r applet; do
  [ "$applet" = "bin/busybox" ] && continue
  mkdir -p "$stage/$(dirname "$applet")"
  ln -sf /bin/busybox "$stage/$applet"
done < <("$busybox" --list-full)

cat > "$stage/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
www:x:33:33:www:/www:/bin/false
nobody:x:99:99:nobody:/nonexistent:/bin/false
PASSWD
cat > "$stage/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
www:x:33:
nogroup:x:99:
GROUP
echo "haco-fleet" > "$stage/etc/hostname"
cat > "$stage/www/index.html" <<'HTML'
<!doctype html>
<title>haco-fleet busybox</title>
<p>served by busybox httpd inside a haco-fleet container</p>
HTML
cp "$stage/www/index.html" "$stage/var/www/index.html"

tmp_out="$out.tmp.$$"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$stage" -czf "$tmp_out" .
mv -f "$tmp_out" "$out"
echo "$out"
