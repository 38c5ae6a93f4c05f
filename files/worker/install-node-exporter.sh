#!/bin/bash
# Installs node-exporter {{nodeExporterVersion}} from its GitHub release, verified by its published sha256.
# Ubuntu's own package is too old for --web.config.file (0.18.1 on 20.04, 1.3.1 on 22.04; the flag came in 1.5.0).
set -euo pipefail
version={{nodeExporterVersion}}
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) sha256={{nodeExporterSha256Amd64}} ;;
  arm64) sha256={{nodeExporterSha256Arm64}} ;;
  *) echo "node-exporter: no pinned checksum for $arch" >&2; exit 1 ;;
esac
name="node_exporter-$version.linux-$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL "https://github.com/prometheus/node_exporter/releases/download/v$version/$name.tar.gz" -o "$work/$name.tar.gz"
echo "$sha256  $work/$name.tar.gz" | sha256sum --check --strict -
tar -xzf "$work/$name.tar.gz" -C "$work"
install -m 0755 "$work/$name/node_exporter" /usr/local/bin/node_exporter
