#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmarks need on a fresh
# Debian/Ubuntu machine, and nothing when it is all there already.
#   Debian packages: iptables nftables iproute2 conntrack socat make git,
#   strace (crash injection), and the real clients the tests drive:
#   podman runc containerd
#   Go >= 1.21 (apt), which then fetches the exact toolchain go.mod names
#   from the Go module proxy (GOTOOLCHAIN=auto).
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: run as root (it installs packages)" >&2
	exit 1
fi

missing=()
for pair in iptables:iptables nft:nftables ip:iproute2 conntrack:conntrack socat:socat make:make git:git \
	strace:strace podman:podman runc:runc containerd:containerd ctr:containerd nsenter:util-linux; do
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

if ! go_ok; then
	echo "install-deps: installing Go from apt"
	apt_install golang-go || true
	if ! go_ok; then
		# Older releases ship an old default Go; a versioned package may be newer.
		for p in golang-1.24 golang-1.23 golang-1.22 golang-1.21; do
			if apt-cache show "$p" >/dev/null 2>&1 && apt_install "$p"; then
				ln -sf "/usr/lib/go-${p#golang-}/bin/go" /usr/local/bin/go
				break
			fi
		done
	fi
	if ! go_ok; then
		echo "install-deps: need Go >= 1.21 (it fetches the toolchain go.mod asks for); install it and re-run" >&2
		exit 1
	fi
fi
echo "install-deps: ok ($(go env GOVERSION), $(iptables --version))"
