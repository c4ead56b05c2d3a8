#!/usr/bin/env bash
# `cmake --install` into a temporary prefix lays down every file the package
# ships, each usable: the program runs, the man page is one, the completion
# completes, the unit starts the configured binary, the templates expand.
#   tests/install/check-install.sh BUILD_DIR MAN_PAGE   (MAN_PAGE: ON or OFF, HACO_MAN_PAGE)
set -euo pipefail
build=$(realpath "$1")
man_page=${2:-ON}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/haco-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

cmake --install "$build" --prefix "$prefix" >/dev/null

expected=(
  bin/haco-fleet
  share/bash-completion/completions/haco-fleet
  share/haco-fleet/templates/busybox-httpd.haco
  share/haco-fleet/templates/phpinfo.haco
  share/haco-fleet/templates/phpinfo-oci.haco
  share/haco-fleet/scripts/build-busybox-image.sh
  share/haco-fleet/scripts/build-php-image.sh
  share/haco-fleet/scripts/build-php-oci.sh
  lib/systemd/system/haco-fleet@.service
  libexec/haco-fleet/slurm-epilog
)
[ "$man_page" = ON ] && expected+=(share/man/man1/haco-fleet.1)
for f in "${expected[@]}"; do
  [ -s "$prefix/$f" ] || fail "$f not installed"
done
for f in bin/haco-fleet share/haco-fleet/scripts/build-busybox-image.sh share/haco-fleet/scripts/build-php-image.sh \
         libexec/haco-fleet/slurm-epilog; do
  [ -x "$prefix/$f" ] || fail "$f not executable"
done
# Nothing installed that the list above does not name.
extra=$(cd "$prefix" && find . -type f | sed 's|^\./||' | sort | comm -23 - <(printf '%s\n' "${expected[@]}" | sort))
[ -z "$extra" ] || fail "unexpected files installed: $extra"

version=$("$prefix/bin/haco-fleet" --version) || fail "haco-fleet --version failed"
[[ $version == "haco-fleet "[0-9]* ]] || fail "--version printed '$version'"

if [ "$man_page" = ON ]; then
  head -n 5 "$prefix/share/man/man1/haco-fleet.1" | grep -q '^\.TH HACO-FLEET "1"' || fail "the man page has no .TH HACO-FLEET 1 line"
  for verb in expand up ps down stop start restart exec logs inspect reload metrics; do
    grep -q "^\.SS $verb\$" "$prefix/share/man/man1/haco-fleet.1" || fail "the man page has no section for $verb"
  done
fi

# The completion, sourced as bash-completion does, completes verbs and options
# from the installed program.
completion() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _haco_fleet; echo "${COMPREPLY[*]}"' \
    _ "$prefix/share/bash-completion/completions/haco-fleet" "$@"
}
export PATH="$prefix/bin:$PATH"
[ "$(completion haco-fleet re)" = "restart reload" ] || fail "'haco-fleet re<TAB>' gave '$(completion haco-fleet re)'"
[ "$(completion haco-fleet up --ro)" = "--rootfs" ] || fail "'haco-fleet up --ro<TAB>' gave '$(completion haco-fleet up --ro)'"
[ "$(completion haco-fleet metrics --ou)" = "--output" ] || fail "'haco-fleet metrics --ou<TAB>' gave '$(completion haco-fleet metrics --ou)'"
[ "$(completion haco-fleet up --rootfs '')" = "overlay extract" ] || fail "'--rootfs <TAB>' gave '$(completion haco-fleet up --rootfs '')'"

unit=$prefix/lib/systemd/system/haco-fleet@.service
# ExecStart names the program where the configured prefix puts it (the .deb
# is configured with /usr, scripts/package.sh).
configured_prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
grep -q "^ExecStart=$configured_prefix/bin/haco-fleet up --foreground " "$unit" ||
  fail "the unit's ExecStart does not run $configured_prefix/bin/haco-fleet up: $(grep ExecStart= "$unit")"
grep -q '@HACO_BINDIR@' "$unit" && fail "the unit still holds @HACO_BINDIR@"
# Slurm's Epilog runs the installed program too.
grep -q "^exec $configured_prefix/bin/haco-fleet --quiet slurm epilog\$" "$prefix/libexec/haco-fleet/slurm-epilog" ||
  fail "slurm-epilog does not exec $configured_prefix/bin/haco-fleet"
sh -n "$prefix/libexec/haco-fleet/slurm-epilog" || fail "slurm-epilog is not valid sh"

# The installed templates evaluate with the installed program.
for pair in busybox-httpd:busybox phpinfo:phpinfo; do
  template=${pair%%:*} instance=${pair#*:}
  out=$(haco-fleet expand --ports 10001-10002 "$prefix/share/haco-fleet/templates/$template.haco") ||
    fail "expand of the installed $template.haco failed"
  [ "$(grep -cE "^$instance-1000[12] " <<<"$out")" -eq 2 ] || fail "expand of $template.haco does not list $instance-10001 and -10002: $out"
done

[ "$failures" -eq 0 ] || exit 1
echo "install: ${#expected[@]} files in $prefix, each checked"
