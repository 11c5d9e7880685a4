#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a fresh
# Debian/Ubuntu machine, and nothing when it is all there already.
#   Debian packages: iptables nftables iproute2 conntrack socat make git
#   procps, strace (crash injection), and with --clients the real clients the
#   tests drive: podman runc containerd
#   Go >= 1.21 (apt), which then fetches the exact toolchain go.mod names
#   from the Go module proxy (GOTOOLCHAIN=auto); where apt's Go is older
#   (Debian 12), that toolchain is fetched from the proxy with it.
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root (it installs packages)" >&2
	exit 1
fi

pairs="iptables:iptables nft:nftables ip:iproute2 conntrack:conntrack socat:socat make:make git:git strace:strace sysctl:procps"
if [ "${1:-}" = --clients ]; then
	pairs="$pairs podman:podman runc:runc containerd:containerd ctr:containerd nsenter:util-linux"
fi
missing=()
for pair in $pairs; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)

go_ok() {
	command -v go >/dev/null 2>&1 || return 1
	local v
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	# toolchain switching (and so any go.mod requirement) needs go >= 1.21
	[ "$(printf '%s\n1.21\n' "${v%%[!0-9.]*}" | sort -V | head -n1)" = "1.21" ]
}

apt_updated=
apt_install() {
	[ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	apt_install "${missing[@]}"
fi

# The Go that go.mod names, as the go command itself would fetch it
# (GOTOOLCHAIN): the module golang.org/toolchain from the Go module proxy,
# downloaded with whatever older Go apt gave (Debian 12 has 1.19, which
# cannot switch toolchains itself), and linked as /usr/local/bin/go.
toolchain_from_proxy() {
	local want arch tmp dir
	want=$(awk '/^go /{print $2; exit}' "$(dirname "$0")/../go.mod")
	case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && go mod download -json "golang.org/toolchain@v0.0.1-go$want.linux-$arch" | awk -F'"' '/"Dir"/{print $4}')
	rm -rf "$tmp"
	[ -n "$dir" ] && [ -f "$dir/bin/go" ] || return 1
	# A module zip keeps no file modes; the go command marks these
	# executable itself when it switches toolchains.
	chmod 0555 "$dir"/bin/* "$dir"/pkg/tool/linux_"$arch"/*
	ln -sf "$dir/bin/go" /usr/local/bin/go
	hash -r
}

if ! go_ok; then
	echo "install-deps: installing Go from apt"
	apt_install golang-go ca-certificates || true
	if ! go_ok; then
		echo "install-deps: apt's Go is older than 1.21; fetching the toolchain go.mod names from the Go module proxy"
		toolchain_from_proxy || true
	fi
	if ! go_ok; then
		echo "install-deps: need Go >= 1.21 (it fetches the toolchain go.mod asks for); install it and re-run" >&2
		exit 1
	fi
fi
echo "install-deps: ok ($(go env GOVERSION), $(iptables --version))"
