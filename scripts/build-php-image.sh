#!/usr/bin/env bash
# Builds the Apache (prefork MPM) + mod_php image tarball from Debian 12
# (bookworm) packages with mmdebstrap, through the same Debian mirror apt uses
# on this machine.
#
#   scripts/build-php-image.sh [--seed-layout] [--out PATH] [--force]
#
# Default image (templates/phpinfo.haco): /usr/local/bin/start-apache runs
# Apache in the foreground on ${APACHE_PORT}; workers run as www-data (33).
# --seed-layout: the image ../shared/seed/phpinfo-test.haco expects:
# /usr/sbin/httpd honouring APACHE_PORT and APACHE_PID, user apache (48),
# /var/run/httpd; written at /var/lib/haconiwa/images/haconiwa-image-php-tester.tar.gz.
#
# The output is cached: PATH.key holds a hash of this script, the layout and
# the mirror list; when it matches, the path is printed without rebuilding.
# The last line printed on stdout is the image path. See docs/images.md.
set -euo pipefail

readonly SUITE=bookworm
readonly PACKAGES=apache2,libapache2-mod-php
# Ids a container maps: 0..ID_RANGE_MAX inside, port*100.. on the host.
readonly ID_RANGE_MAX=99

die() { echo "build-php-image: $*" >&2; exit 1; }
say() { echo "build-php-image: $*" >&2; }

# ---------------------------------------------------------------------------
# Customisation of the unpacked tree. mmdebstrap runs this script again as its
# customize hook: build-php-image.sh --customize LAYOUT ROOTFS.
# ---------------------------------------------------------------------------

write_envvars() {
  local root=$1 layout=$2 run_user run_dir pid_default
  if [ "$layout" = seed ]; then
    run_user=apache run_dir=/var/run/httpd pid_default='${APACHE_PID:-/var/run/httpd/httpd.pid}'
  else
    run_user=www-data run_dir=/var/run/apache2 pid_default='/var/run/apache2/apache2.pid'
  fi
  # Every value can be preset by the caller, so one tree can serve several
  # Apache instances (one port, pid file, lock and log directory each).
  cat >"$root/etc/apache2/envvars" <<EOF
# Sourced by start-apache, httpd and apache2ctl. Values already set in the
# environment win; APACHE_PORT picks the port Apache listens on.
unset HOME
export APACHE_PORT=\${APACHE_PORT:-80}
export APACHE_RUN_USER=\${APACHE_RUN_USER:-$run_user}
export APACHE_RUN_GROUP=\${APACHE_RUN_GROUP:-$run_user}
export APACHE_RUN_DIR=\${APACHE_RUN_DIR:-$run_dir}
export APACHE_PID_FILE=\${APACHE_PID_FILE:-$pid_default}
export APACHE_LOCK_DIR=\${APACHE_LOCK_DIR:-/var/lock/apache2}
export APACHE_LOG_DIR=\${APACHE_LOG_DIR:-/var/log/apache2}
export LANG=C
EOF
}

# The foreground entry point: prepares the run, lock and log directories
# (a fresh /run or /var/log may be a tmpfs) and becomes apache2.
write_launcher() {
  local path=$1 why=$2 default_args=$3
  cat >"$path" <<EOF
#!/bin/sh
# $why
set -e
. /etc/apache2/envvars
mkdir -p "\$APACHE_RUN_DIR" "\$APACHE_LOCK_DIR" "\$APACHE_LOG_DIR" "\$(dirname "\$APACHE_PID_FILE")"
chown "\$APACHE_RUN_USER" "\$APACHE_LOCK_DIR"
exec /usr/sbin/apache2 $default_args"\$@"
EOF
  chmod 0755 "$path"
}

write_apache_config() {
  local root=$1
  echo 'Listen ${APACHE_PORT}' >"$root/etc/apache2/ports.conf"
  echo 'ServerName localhost' >"$root/etc/apache2/conf-available/servername.conf"
  ln -sf ../conf-available/servername.conf "$root/etc/apache2/conf-enabled/servername.conf"
  # A fleet runs a hundred of these: a few workers each is plenty.
  cat >"$root/etc/apache2/mods-available/mpm_prefork.conf" <<'EOF'
<IfModule mpm_prefork_module>
	StartServers		 2
	MinSpareServers		 1
	MaxSpareServers		 4
	MaxRequestWorkers	 16
	MaxConnectionsPerChild	 0
</IfModule>
EOF
  [ -e "$root/etc/apache2/mods-enabled/mpm_prefork.load" ] || die "prefork MPM is not enabled"
  [ -e "$root/etc/apache2/mods-enabled/php8.2.load" ] || die "mod_php is not enabled"
  rm -f "$root/var/www/html/index.html"
  printf '<?php phpinfo();\n' >"$root/var/www/html/index.php"
}

# Moves every user and group whose id lies outside 0..ID_RANGE_MAX to the
# highest free id inside it (files owned by it follow), so that no file of
# the image lands outside an instance's mapped range once shifted.
remap_ids_outside_range() {
  local root=$1 db kind old name new
  for db in passwd group; do
    kind=$([ "$db" = passwd ] && echo uid || echo gid)
    while IFS=: read -r name old; do
      new=$(awk -F: -v max="$ID_RANGE_MAX" '{ used[$3] = 1 }
            END { for (i = max; i > 0; i--) if (!(i in used)) { print i; exit } }' "$root/etc/$db")
      [ -n "$new" ] || die "no free $kind in 0..$ID_RANGE_MAX for $name"
      awk -F: -v OFS=: -v name="$name" -v new="$new" '$1 == name { $3 = new } { print }' \
        "$root/etc/$db" >"$root/etc/$db.new"
      cat "$root/etc/$db.new" >"$root/etc/$db" && rm "$root/etc/$db.new"
      if [ "$db" = passwd ]; then
        find "$root" -xdev -uid "$old" -exec chown -h "$new" {} +
      else
        find "$root" -xdev -gid "$old" -exec chgrp -h "$new" {} +
        awk -F: -v OFS=: -v old="$old" -v new="$new" '$4 == old { $4 = new } { print }' \
          "$root/etc/passwd" >"$root/etc/passwd.new"
        cat "$root/etc/passwd.new" >"$root/etc/passwd" && rm "$root/etc/passwd.new"
      fi
      say "remapped $kind $name $old -> $new"
    done < <(awk -F: -v max="$ID_RANGE_MAX" '$3 > max { print $1 ":" $3 }' "$root/etc/$db")
  done
  local stray
  stray=$(find "$root" -xdev \( -uid +"$ID_RANGE_MAX" -o -gid +"$ID_RANGE_MAX" \) -print -quit)
  [ -z "$stray" ] || die "file owned outside 0..$ID_RANGE_MAX after remapping: $stray"
}

add_seed_user() {
  local root=$1
  grep -q '^apache:' "$root/etc/passwd" && return
  echo 'apache:x:48:' >>"$root/etc/group"
  echo 'apache:!::' >>"$root/etc/gshadow"
  echo 'apache:x:48:48:Apache:/usr/share/httpd:/usr/sbin/nologin' >>"$root/etc/passwd"
  echo 'apache:!:19000::::::' >>"$root/etc/shadow"
  mkdir -p "$root/run/httpd"
  chown 48:48 "$root/run/httpd"
}

drop_build_leftovers() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log "$root"/var/log/apt
}

customize() {
  local layout=$1 root=$2
  [ -d "$root/etc/apache2" ] || die "customize: $root has no /etc/apache2"
  write_envvars "$root" "$layout"
  write_apache_config "$root"
  write_launcher "$root/usr/local/bin/start-apache" \
    "Runs Apache in the foreground (as a container's init); APACHE_PORT sets the port." "-DFOREGROUND "
  if [ "$layout" = seed ]; then
    add_seed_user "$root"
    write_launcher "$root/usr/sbin/httpd" \
      "httpd as the seed's definition calls it: APACHE_PORT, APACHE_PID; -DFOREGROUND or -X pass through." ""
  fi
  remap_ids_outside_range "$root"
  drop_build_leftovers "$root"
}

if [ "${1:-}" = --customize ]; then
  customize "$2" "$3"
  exit 0
fi

# ---------------------------------------------------------------------------
# Build.
# ---------------------------------------------------------------------------

layout=default
out=
force=0
while [ $# -gt 0 ]; do
  case $1 in
    --seed-layout) layout=seed ;;
    --out) [ $# -ge 2 ] || die "--out needs a path"; out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
if [ -z "$out" ]; then
  if [ "$layout" = seed ]; then
    out=/var/lib/haconiwa/images/haconiwa-image-php-tester.tar.gz
  else
    out=/var/lib/haco-fleet/images/php-apache.tar.gz
  fi
fi
case $out in *.tar.gz) ;; *) die "--out must end in .tar.gz: $out" ;; esac
out=$(realpath -m "$out")

# The Debian sources apt uses here (deb822 or one-line files naming the suite).
mirror_files=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -Eq "(^|[[:space:]])$SUITE([[:space:]]|$)" "$f" && mirror_files+=("$f")
done
[ ${#mirror_files[@]} -gt 0 ] || die "no apt source for $SUITE in /etc/apt"

self=$(realpath "$0")
key=$( { sha256sum "$self" | cut -d' ' -f1; echo "layout=$layout"; cat "${mirror_files[@]}"; } \
       | sha256sum | cut -d' ' -f1)

if [ "$force" = 0 ] && [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
  say "cached ($key)"
  echo "$out"
  exit 0
fi

command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run scripts/install-deps.sh"
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap --mode=root)"

mkdir -p "$(dirname "$out")"
tmp_out="$out.partial.$$.tar.gz"
trap 'rm -f "$tmp_out"' EXIT

say "building $layout image from ${mirror_files[*]} -> $out"
start=$(date +%s.%N)
mmdebstrap --quiet --mode=root --variant=essential --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook="\"$self\" --customize $layout \"\$1\"" \
  "$SUITE" "$tmp_out" "${mirror_files[@]}"
mv -f "$tmp_out" "$out"
echo "$key" >"$out.key"
trap - EXIT
end=$(date +%s.%N)

entries=$(tar tzf "$out" | wc -l)
say "built in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s: $(du -h "$out" | cut -f1), $entries entries"
echo "$out"
