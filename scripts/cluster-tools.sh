#!/usr/bin/env bash
# Builds the cluster tests' tools from the Go module proxy into DIR (the
# Makefile's .tools/cluster), each once per version:
#   etcd        go.etcd.io/etcd/server/v3      flannel's store
#   flanneld    github.com/flannel-io/flannel  with the host-gw and vxlan backends only
#   flannel     the flannel CNI plugin: containernetworking/plugins v0.9.1,
#               plugins/meta/flannel (its last release; flannel-io/cni-plugin
#               delegates the same way)
#   containerd, containerd-shim-runc-v2   containerd v2, the CRI of current Kubernetes
#   nerdctl     github.com/containerd/nerdctl/v2, containerd's Docker-compatible CLI
#
# etcd's server module has replace directives and flanneld's main imports
# backends whose cloud SDKs the proxy does not serve, so neither installs
# with `go install`: each main is built in a throwaway module that requires
# the released one, with that module's own requirements and go.sum and
# without the replace directives or the other backends. Nothing is kept
# but the binaries.
#
# usage: cluster-tools.sh DIR
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin
dir=${1:?usage: cluster-tools.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.10}
FLANNEL_CNI_VERSION=${FLANNEL_CNI_VERSION:-v0.9.1}
CONTAINERD2_VERSION=${CONTAINERD2_VERSION:-v2.4.2}
NERDCTL_VERSION=${NERDCTL_VERSION:-v2.2.2}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# built NAME VERSION: whether DIR has NAME at VERSION already.
built() { [ -x "$dir/$1" ] && [ "$(cat "$dir/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$dir/.$1.version"; echo "cluster-tools: $1 $2"; }

# module_dir MODULE@VERSION: the module's source in the module cache.
module_dir() {
	(cd "$work" && go mod download -json "$1" | awk -F'"' '/"Dir"/{print $4}')
}

# throwaway MODULE VERSION: a module in $work/build that requires MODULE at
# VERSION with MODULE's own requirements and checksums, and no replaces.
throwaway() {
	local src=$1 ver=$2 m
	m=$(module_dir "$src@$ver")
	rm -rf "$work/build" && mkdir -p "$work/build"
	awk '/^replace \($/{skip=1; next} skip && /^\)/{skip=0; next} skip || /^replace /{next} {print}' "$m/go.mod" |
		sed -e 's#^module .*#module dnet.test/build#' >"$work/build/go.mod"
	echo "require $src $ver" >>"$work/build/go.mod"
	cp "$m/go.sum" "$work/build/go.sum" && chmod 0644 "$work/build/go.sum"
	echo "$m"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && go mod init dnet.test/lookup >/dev/null 2>&1)

if ! built etcd "$ETCD_VERSION"; then
	m=$(throwaway go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
	cp "$m/main.go" "$work/build/" && chmod 0644 "$work/build/main.go"
	(cd "$work/build" && go build -trimpath -o "$dir/etcd" .)
	stamp etcd "$ETCD_VERSION"
fi

if ! built flanneld "$FLANNEL_VERSION"; then
	m=$(throwaway github.com/flannel-io/flannel "$FLANNEL_VERSION")
	# Keep the backend registrations of host-gw and vxlan only.
	sed -E '/_ "github.com\/flannel-io\/flannel\/pkg\/backend\/[a-z]+"/{/\/(hostgw|vxlan)"/!d}' "$m/main.go" >"$work/build/main.go"
	grep -q 'backend/vxlan"' "$work/build/main.go" && grep -q 'backend/hostgw"' "$work/build/main.go"
	(cd "$work/build" && go build -trimpath -ldflags "-X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" -o "$dir/flanneld" .)
	stamp flanneld "$FLANNEL_VERSION"
fi

if ! built flannel "$FLANNEL_CNI_VERSION"; then
	GOFLAGS= GOBIN="$dir" go install -trimpath "github.com/containernetworking/plugins/plugins/meta/flannel@$FLANNEL_CNI_VERSION"
	stamp flannel "$FLANNEL_CNI_VERSION"
fi

if ! built containerd "$CONTAINERD2_VERSION"; then
	# The snapshotters that need cgo or kernel modules are left out; the
	# tests use overlayfs or native.
	GOFLAGS= GOBIN="$work/ctd" go install -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD2_VERSION"
	mv "$work/ctd/containerd-shim-runc-v2" "$dir/containerd-shim-runc-v2"
	mv "$work/ctd/containerd" "$dir/containerd"
	stamp containerd "$CONTAINERD2_VERSION"
fi

if ! built nerdctl "$NERDCTL_VERSION"; then
	# Its go.mod replaces a test-only module, ./mod/tigron, that the
	# module zip leaves out, and one package its main links names the
	# tigron/tig package's T: a stub module gives it, nothing else.
	m=$(module_dir "github.com/containerd/nerdctl/v2@$NERDCTL_VERSION")
	cp -r "$m" "$work/nerdctl" && chmod -R u+w "$work/nerdctl"
	mkdir -p "$work/nerdctl/mod/tigron/tig"
	printf 'module github.com/containerd/nerdctl/mod/tigron\n\ngo 1.23\n' >"$work/nerdctl/mod/tigron/go.mod"
	printf 'package tig\n\ntype T interface {\n\tLog(args ...any)\n\tFailNow()\n}\n' >"$work/nerdctl/mod/tigron/tig/t.go"
	(cd "$work/nerdctl" && go build -trimpath -o "$dir/nerdctl" ./cmd/nerdctl)
	stamp nerdctl "$NERDCTL_VERSION"
fi
