#!/usr/bin/env bash
# Configures and builds haco-fleet. Usage: scripts/build.sh [BUILD_DIR] [cmake args...]
# BUILD_DIR defaults to build/ (Release). Prints the path of the binary.
# HACO_BUILD_TARGET=haco-fleet builds that target alone (default: all).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$top/build}
shift || true
cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE=${HACO_BUILD_TYPE:-Release} "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" ${HACO_BUILD_TARGET:+--target "$HACO_BUILD_TARGET"}
echo "$build_dir/haco-fleet"
