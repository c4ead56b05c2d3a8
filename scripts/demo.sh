#!/usr/bin/env bash
# From a fresh machine to the phpinfo fleet: installs what is needed, builds
# haco-fleet, builds the Apache+PHP image, and brings up one container per
# port (default 10001-10100). Run as root.
#   scripts/demo.sh [PORTS]
# Stop it with: build/haco-fleet down --name phpinfo   (add --purge to remove the trees)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ports=${1:-10001-10100}
cd "$top"

"$top/scripts/install-deps.sh"
# The program alone: the demo runs neither the tests nor the benchmarks.
binary=$(HACO_BUILD_TARGET=haco-fleet "$top/scripts/build.sh" | tail -n 1)
"$top/scripts/build-php-image.sh" >/dev/null

"$binary" up --ports "$ports" templates/phpinfo.haco
first=${ports%%[-,]*}
echo
echo "Every port now serves the phpinfo page, e.g.: curl -s http://127.0.0.1:$first/ | grep -m1 'PHP Version'"
echo "Apache workers run as host uid port*100+33:   ps -eo uid,pid,args | grep -E '^ *${first}33 '"
echo "List the fleet:  $binary ps     Stop it:  $binary down --name phpinfo [--purge]"
