#!/usr/bin/env bash
# Builds the cluster installer image (conf/kubernetes/Containerfile) with
# podman, offline, from the locally built binaries.
#   scripts/installer-image.sh BIN_DIR [TAG]
# BIN_DIR holds the plugins, dnetctl and dnet-installer (make build
# installer); TAG defaults to localhost/dnet-installer:latest. The image
# gets every binary of BIN_DIR but the test workload and the bench.
set -euo pipefail
bin=${1:?usage: installer-image.sh BIN_DIR [TAG]}
tag=${2:-localhost/dnet-installer:latest}
root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d /tmp/dnet-installer-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/bin"
for b in dnetctl dnet-installer; do
	[ -x "$bin/$b" ] || { echo "installer-image: $bin/$b is missing (make build installer)" >&2; exit 1; }
done
for f in "$bin"/*; do
	[ -f "$f" ] || continue # bin/floor/: make bench-timeline's floor program
	case $(basename "$f") in hello | bench) ;; *) cp "$f" "$ctx/bin/" ;; esac
done
cp "$root/conf/kubernetes/10-dockernet.conflist" "$ctx/"
podman build -q -t "$tag" -f "$root/conf/kubernetes/Containerfile" "$ctx"
echo "installer-image: built $tag"
