#!/usr/bin/env bash
# Downloads, on the host, the .debs that the Debian 12 test guest
# (scripts/vm/build-guest.sh) needs to run scripts/slurm/cluster.sh offline:
# slurmctld, slurmd, slurm-client, munge and every package of their
# Depends/Pre-Depends closure that the guest image does not have. The guest's
# package list is the image's packages.txt (build-guest.sh builds the image
# if it is missing); the closure is resolved here with apt-cache, taking for
# each dependency the first alternative unless one is already there.
#   scripts/slurm/guest-debs.sh OUTDIR
# In the guest: dpkg -i OUTDIR/*.deb. OUTDIR/packages.list names them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { sed -n '9,10p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 2; }
out=$1
wanted=(slurmctld slurmd slurm-client munge)

image=$("$here/../vm/build-guest.sh" | tail -n1)
[ -f "$image/packages.txt" ] || { echo "guest-debs: no $image/packages.txt" >&2; exit 1; }

declare -A have=() need=()
while read -r name _; do have[${name%%:*}]=1; done <"$image/packages.txt"

# One line per dependency of $1: its alternatives, a virtual package replaced
# by the packages that provide it.
dependency_groups() {
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$1" | awk '
      NR == 1 { next }
      /^ *\|?(Pre)?Depends:/ {
        alt = ($1 ~ /^\|/)
        sub(/^ *\|?(Pre)?Depends: */, "")
        group = (continued ? group " " : "") $0
        continued = alt
        if (!alt) { groups[++n] = group; group = "" }
        next
      }
      /^    / { sub(/^ +/, ""); groups[n] = groups[n] " " $0 }
      END { for (i = 1; i <= n; i++) print groups[i] }'
}

queue=("${wanted[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  pkg=${queue[0]}
  queue=("${queue[@]:1}")
  [ -z "${have[$pkg]:-}" ] && [ -z "${need[$pkg]:-}" ] || continue
  need[$pkg]=1
  while read -r -a alternatives; do
    pick=
    for alt in "${alternatives[@]}"; do
      case $alt in "<"*) continue ;; esac
      if [ -n "${have[$alt]:-}" ] || [ -n "${need[$alt]:-}" ]; then pick=; continue 2; fi
      [ -n "$pick" ] || pick=$alt
    done
    [ -n "$pick" ] || { echo "guest-debs: nothing installable for '${alternatives[*]}' of $pkg" >&2; exit 1; }
    queue+=("$pick")
  done < <(dependency_groups "$pkg")
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
printf '%s\n' "${!need[@]}" | sort >"$out/packages.list"
echo "guest-debs: $(wc -l <"$out/packages.list") packages: $(tr '\n' ' ' <"$out/packages.list")"
# Only this list's packages, in the archive's current versions: none left
# from an earlier download (dpkg -i *.deb would get two versions of one).
rm -f "$out"/*.deb
# apt-get download writes into the current directory; as root it warns that
# its sandbox user cannot write there, which does not matter for a download.
(cd "$out" && apt-get download -q $(cat "$out/packages.list") 2>&1 | grep -v -e '^Get:' -e 'unsandboxed' || true)
missing=0
while read -r p; do
  compgen -G "$out/${p}_*.deb" >/dev/null || { echo "guest-debs: $p was not downloaded" >&2; missing=1; }
done <"$out/packages.list"
exit $missing
