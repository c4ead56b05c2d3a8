#!/usr/bin/env bash
# Builds an OCI image layout of the Apache + PHP image from its tarball
# (scripts/build-php-image.sh), for templates/phpinfo-oci.haco:
#   scripts/build-php-oci.sh [OUT_DIR] [PHP_TARBALL]
# OUT_DIR defaults to /var/lib/haco-fleet/images/php-apache-oci, tagged 8.2:
# the tarball as the base layer, a second layer holding the phpinfo page at
# /var/www/html/info.php, and a config whose Entrypoint is start-apache, Env
# the PATH, WorkingDir /var/www/html. Needs umoci (scripts/install-deps.sh).
# A second run with an up-to-date layout does nothing. Prints OUT_DIR.
set -euo pipefail

out="${1:-/var/lib/haco-fleet/images/php-apache-oci}"
tarball="${2:-/var/lib/haco-fleet/images/php-apache.tar.gz}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v umoci >/dev/null || { echo "build-php-oci: umoci missing; run scripts/install-deps.sh" >&2; exit 1; }
[ -s "$tarball" ] || tarball="$("$here/build-php-image.sh" --out "$tarball" | tail -n 1)"

if [ -f "$out/index.json" ] && [ "$out/index.json" -nt "$tarball" ] && [ "$out/index.json" -nt "${BASH_SOURCE[0]}" ]; then
  echo "$out"
  exit 0
fi
stage="$(mktemp -d "${TMPDIR:-/tmp}/haco-php-oci.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
rm -rf "$out"
mkdir -p "$(dirname "$out")"

gzip -dc "$tarball" > "$stage/base.tar"
mkdir -p "$stage/page/var/www/html"
printf '<?php phpinfo();\n' > "$stage/page/var/www/html/info.php"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$stage/page" -cf "$stage/page.tar" ./var

umoci init --layout "$out"
umoci new --image "$out:8.2"
umoci raw add-layer --image "$out:8.2" --history.created_by "build-php-image.sh" "$stage/base.tar"
umoci raw add-layer --image "$out:8.2" --history.created_by "info.php" "$stage/page.tar"
umoci config --image "$out:8.2" --config.entrypoint /usr/local/bin/start-apache \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir /var/www/html
umoci gc --layout "$out"
echo "$out"
