#!/usr/bin/env bash
# Rootfs preparation benchmark: N instance root filesystems of one image,
# three ways, for each N (default 10 100), in one run:
#
#   a  the seed's way: per instance, serially, `tar xzf` into a fresh
#      directory then `chown -R BASE:BASE`
#   b  haco-fleet's extract strategy: the archive decompressed once, N trees
#      written through io_uring with ownership shifted in the same pass
#   c  haco-fleet's overlay strategy: the image extracted once into the cache
#      (cold: cache empty; warm: cache filled by an earlier run), then one
#      idmapped overlay mount per instance
#
# and prints each time with its ratio to (a), the removal time of the N trees
# (what `down --purge` does), and first how (a) splits between decompression,
# file creation and chown for one instance.
#
#   scripts/bench-rootfs.sh [--image PATH] [--build DIR] [--work DIR] [--parallel P] [N...]
#
# Image: --image, else the Apache+PHP image of scripts/build-php-image.sh when
# it has been built (default or seed layout), else a Debian minbase tarball
# built once with mmdebstrap and cached in the build directory.
# Work directory (default BUILD/bench-rootfs) must be on the filesystem to
# measure; everything made there is removed on exit, Ctrl-C or failure.
set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
readonly REPO=$(dirname "$SCRIPT_DIR")
readonly ID_RANGE=65536
readonly ID_BASE=1000000

image=
build=$REPO/build-bench-rootfs
work=
parallel=
counts=()

die() { echo "bench-rootfs: $*" >&2; exit 1; }
say() { echo "bench-rootfs: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --image) image=$2; shift ;;
    --build) build=$2; shift ;;
    --work) work=$2; shift ;;
    --parallel) parallel=$2; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) counts+=("$1") ;;
  esac
  shift
done
[ ${#counts[@]} -gt 0 ] || counts=(10 100)
[ "$(id -u)" -eq 0 ] || die "needs root (chown, mounts, user namespaces)"
work=${work:-$build/bench-rootfs}

say "building haco-rootfs (Release) in $build"
cmake -S "$REPO" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHACO_BUILD_TESTS=OFF -DHACO_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target haco-rootfs -j2 >/dev/null
readonly TOOL=$build/src/rootfs/haco-rootfs

if [ -z "$image" ]; then
  for candidate in /var/lib/haco-fleet/images/php-apache.tar.gz \
                   /var/lib/haconiwa/images/haconiwa-image-php-tester.tar.gz; do
    if [ -f "$candidate" ]; then image=$candidate; break; fi
  done
fi
if [ -z "$image" ]; then
  image=$build/images/minbase.tar.gz
  if [ ! -f "$image" ]; then
    say "building a Debian minbase image with mmdebstrap (once)"
    mkdir -p "$build/images"
    mmdebstrap --variant=minbase --quiet bookworm "$image.tmp.tar.gz"
    mv "$image.tmp.tar.gz" "$image"
  fi
fi
[ -f "$image" ] || die "no image at $image"

# Everything below lives in $work; removed whatever happens.
cleanup() {
  if [ -d "$work" ]; then
    for state in "$work"/*.json; do
      [ -f "$state" ] && "$TOOL" teardown --state "$state" --purge >/dev/null 2>&1 || true
    done
    "$TOOL" remove "$work" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
mkdir -p "$work"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
elapsed() { calc "$2 - $1"; }
ratio() { calc "$1 / $2"; }
json_seconds() { sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p'; }
# The image is read from the disk in every phase (its cached pages dropped).
drop_caches() { sync; dd if="$image" iflag=nocache count=0 status=none; }
decompressor() {
  case $1 in
    *.gz|*.tgz) echo "gzip -dc" ;; *.xz) echo "xz -dc" ;; *.zst) echo "zstd -dc" ;;
    *.bz2) echo "bzip2 -dc" ;; *) echo "cat" ;;
  esac
}
par=()
[ -n "$parallel" ] && par=(--parallel "$parallel")

entries=$(tar -tf "$image" 2>/dev/null | wc -l || true)
size=$(du -m "$image" | cut -f1)
echo "image: $image (${size} MiB compressed, ${entries} entries); work dir: $work on $(df --output=fstype "$work" | tail -1)"
echo "machine: $(nproc) CPUs, kernel $(uname -r); every phase starts after sync, the image not in the page cache"
echo

# How the seed's time splits, for one instance: decompression alone, file
# creation alone (from an uncompressed tar already in memory), chown -R, and
# the real `tar xzf` where gzip and tar overlap in a pipe.
drop_caches
t0=$(now); $(decompressor "$image") "$image" >/dev/null; t1=$(now)
decomp=$(elapsed "$t0" "$t1")
$(decompressor "$image") "$image" >"$work/image.tar"
mkdir "$work/split" "$work/split2"
sync
t0=$(now); tar xf "$work/image.tar" -C "$work/split"; t1=$(now)
create=$(elapsed "$t0" "$t1")
sync
t0=$(now); chown -R "$ID_BASE:$ID_BASE" "$work/split"; t1=$(now)
chown_time=$(elapsed "$t0" "$t1")
drop_caches
t0=$(now); tar xzf "$image" -C "$work/split2"; t1=$(now)
tar_total=$(elapsed "$t0" "$t1")
"$TOOL" remove "$work/split" "$work/split2" "$work/image.tar" >/dev/null
sum=$(calc "$decomp + $create + $chown_time")
printf 'seed, one instance: tar xzf %.2f s + chown -R %.2f s = %.2f s\n' "$tar_total" "$chown_time" \
  "$(calc "$tar_total + $chown_time")"
printf '  alone: decompression %.2f s (%.0f%%), file creation %.2f s (%.0f%%), chown -R %.2f s (%.0f%%)\n\n' \
  "$decomp" "$(calc "100 * $decomp / $sum")" "$create" "$(calc "100 * $create / $sum")" \
  "$chown_time" "$(calc "100 * $chown_time / $sum")"

printf '%6s  %-34s %10s %10s %14s\n' N way seconds "vs (a)" "removal (s)"
for n in "${counts[@]}"; do
  # (a) the seed's loop
  drop_caches
  t0=$(now)
  for ((i = 0; i < n; i++)); do
    base=$((ID_BASE + i * ID_RANGE))
    mkdir -p "$work/seed/$i"
    tar xzf "$image" -C "$work/seed/$i"
    chown -R "$base:$base" "$work/seed/$i"
  done
  t1=$(now)
  a=$(elapsed "$t0" "$t1")
  sync
  t0=$(now); "$TOOL" remove "${par[@]}" "$work"/seed/* >/dev/null; t1=$(now)
  printf '%6d  %-34s %10.2f %10s %14.2f\n' "$n" "(a) tar xzf + chown -R, serial" "$a" "1.0x" "$(elapsed "$t0" "$t1")"
  rmdir "$work/seed"

  # (b) extract
  drop_caches
  b=$("$TOOL" prepare --archive "$image" --dir "$work/extract" --count "$n" --strategy extract \
        --base "$ID_BASE" --range "$ID_RANGE" --data-root "$work/data" --state "$work/extract.json" "${par[@]}" \
      | json_seconds)
  sync
  rm_b=$("$TOOL" teardown --state "$work/extract.json" --purge "${par[@]}" | json_seconds)
  rm -f "$work/extract.json"
  printf '%6d  %-34s %10.2f %9.1fx %14.2f\n' "$n" "(b) extract" "$b" "$(ratio "$a" "$b")" "$rm_b"

  # (c) overlay, cold then warm cache
  "$TOOL" remove "$work/data" >/dev/null
  for cache in cold warm; do
    drop_caches
    c=$("$TOOL" prepare --archive "$image" --dir "$work/overlay" --count "$n" --strategy overlay \
          --base "$ID_BASE" --range "$ID_RANGE" --data-root "$work/data" --state "$work/overlay.json" "${par[@]}" \
          2>/dev/null | json_seconds)
    sync
    rm_c=$("$TOOL" teardown --state "$work/overlay.json" --purge "${par[@]}" | json_seconds)
    rm -f "$work/overlay.json"
    printf '%6d  %-34s %10.2f %9.1fx %14.2f\n' "$n" "(c) overlay, $cache image cache" "$c" "$(ratio "$a" "$c")" "$rm_c"
  done
  "$TOOL" remove "$work/data" >/dev/null
done
