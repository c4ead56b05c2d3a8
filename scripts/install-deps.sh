#!/usr/bin/env bash
# Installs, from Debian's packages, everything haco-fleet needs to build, test,
# benchmark, package, build its images and boot its test guest. Idempotent and non-interactive.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  # libraries the binary links (libboost-dev: Boost.Asio, header-only)
  liburing-dev libarchive-dev libboost-dev libcli11-dev libmruby-dev
  nlohmann-json3-dev libfmt-dev libseccomp-dev libssl-dev libsystemd-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the man page (help2man) and the .deb (scripts/package.sh: dpkg-shlibdeps, file)
  help2man dpkg-dev file
  # image builders, tests and benchmark scripts
  mmdebstrap busybox-static curl jq
  # OCI layouts and docker archives for the image tests and docs/images.md's example
  umoci skopeo
  tar gzip xz-utils zstd bzip2 util-linux iproute2 procps
  # bench-startup.sh draws its ready-time CDF with gnuplot; its test reads the SVG with xmllint
  gnuplot-nox libxml2-utils
  # the Debian 12 test guest (scripts/vm/, docs/vm.md)
  qemu-system-x86 qemu-utils e2fsprogs
  # the local Slurm cluster of the multi-host tests (scripts/slurm/cluster.sh)
  slurmctld slurmd slurm-client munge
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
