#!/usr/bin/env bash
# Builds the cluster installer image (conf/kubernetes/Containerfile) with
# podman, offline, from the locally built binaries.
#   scripts/installer-image.sh BIN_DIR [TAG]
# BIN_DIR holds bridge host-local portmap loopback dnetctl dnet-installer
# (make build installer); TAG defaults to localhost/dnet-installer:latest.
set -euo pipefail
bin=${1:?usage: installer-image.sh BIN_DIR [TAG]}
tag=${2:-localhost/dnet-installer:latest}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d /tmp/dnet-installer-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/bin"
for b in bridge host-local portmap loopback dnetctl dnet-installer; do
	[ -x "$bin/$b" ] || { echo "installer-image: $bin/$b is missing (make build installer)" >&2; exit 1; }
	cp "$bin/$b" "$ctx/bin/"
done
cp "$root/conf/kubernetes/10-dockernet.conflist" "$ctx/"
podman build -q -t "$tag" -f "$root/conf/kubernetes/Containerfile" "$ctx"
echo "installer-image: built $tag"
