#!/usr/bin/env bash
# Writes the haco-fleet(1) man page with help2man: the program's --help and
# --version, then one section per verb holding that verb's own --help.
#   packaging/man-page.sh BINARY OUT
set -euo pipefail
binary=$(realpath "$1")
out=$2
command -v help2man >/dev/null || { echo "man-page: help2man missing: run scripts/install-deps.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/haco-man.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Called as plain haco-fleet, the program names itself so in its usage lines.
mkdir "$work/bin"
ln -s "$binary" "$work/bin/haco-fleet"
export PATH="$work/bin:$PATH"

# Each verb's help as it prints it (no fill), with roff's escape character
# and leading dots or quotes made literal.
{
  echo '[VERBS]'
  for verb in $(haco-fleet --help | sed -n '/^Subcommands:/,/^$/p' | sed -nE 's/^ +([a-z][-a-z]*) .*/\1/p'); do
    echo ".SS $verb"
    echo '.nf'
    haco-fleet "$verb" --help | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
    echo '.fi'
  done
  echo '[FILES]'
  echo '.TP'
  echo '/usr/share/haco-fleet/templates'
  echo 'Example definitions: busybox-httpd.haco and phpinfo.haco.'
  echo '.TP'
  echo '/usr/share/haco-fleet/scripts'
  echo 'build-busybox-image.sh and build-php-image.sh, which write the images the templates read to /var/lib/haco-fleet/images.'
  echo '[SEE ALSO]'
  echo 'systemctl(1): haco-fleet@NAME.service runs the fleet described by /etc/haco-fleet/NAME.env.'
} >"$work/verbs.h2m"

help2man --no-info --section 1 --manual 'User Commands' \
  --name 'start, supervise and stop a fleet of isolated containers' \
  --include "$work/verbs.h2m" --output "$out.tmp" haco-fleet
mv -f "$out.tmp" "$out"
