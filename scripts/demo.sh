#!/usr/bin/env bash
# What `docker run -p 8080:5000` does to one packet, built from our CNI
# plugins and driven by cnitool:
#
#   client netns ──► host 192.0.2.1:8080 ─PREROUTING/DNAT─► docker0 ─► veth ─► container 172.17.0.2:5000
#                ◄── reply un-DNATed by conntrack ◄──────── docker0 ◄──────────┘
#   container ──► anything beyond the host: MASQUERADE to the host's address
#
# Everything happens in three private network namespaces: one plays the
# host, one the container, one an outside client. The real host keeps its
# links, rules and sysctls; a Docker already running there is not touched.
# Set DEMO_SKIP_SETUP=1 to skip installing and building (the tests do), and
# DEMO_BACKEND=iptables or nftables to pick the netfilter backend (default:
# what the plugins choose, nftables where the kernel has it).
set -euo pipefail
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it creates network namespaces)" >&2
	exit 1
fi
if [ "${DEMO_SKIP_SETUP:-}" != 1 ]; then
	"$root/scripts/install-deps.sh"
	make -C "$root" --no-print-directory build cnitool
fi
bin=${DNET_BIN:-$root/bin}
cnitool=${CNITOOL:-$root/.tools/bin/cnitool}

# Docker's names, unless the real host already uses them: then the demo says
# so and picks a free bridge name and subnet, so nothing it prints can be
# mistaken for the real docker0.
bridge=docker0 subnet=172.17.0.0/16 gateway=172.17.0.1 ctrip=172.17.0.2
taken() { ip -4 route show | awk '{print $1}' | grep -q "^$1"; }
if ip link show docker0 >/dev/null 2>&1 || taken 172.17.; then
	for n in $(seq 18 31); do
		if ! taken "172.$n."; then
			bridge=dnet0 subnet=172.$n.0.0/16 gateway=172.$n.0.1 ctrip=172.$n.0.2
			break
		fi
	done
	echo "demo: this host already uses docker0 or 172.17.0.0/16 (Docker?); using bridge $bridge and $subnet instead"
fi

tag=dndemo$$
hostns=$tag-host ctrns=$tag-ctr clientns=$tag-client
work=$(mktemp -d /tmp/dnet-demo.XXXXXX)
pids=()
added=
cleanup() {
	set +e
	if [ -n "$added" ]; then
		cni del >/dev/null 2>&1 || echo "demo: DEL failed; removing the namespaces anyway"
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for n in "$clientns" "$ctrns" "$hostns"; do ip netns del "$n" 2>/dev/null; done
	ip link del "$tag-h" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }

step "1. Three namespaces: host ($hostns), container ($ctrns), client ($clientns)"
for n in "$hostns" "$ctrns" "$clientns"; do ip netns add "$n"; nsx "$n" ip link set lo up; done
ip link add "$tag-h" type veth peer name "$tag-c"
ip link set "$tag-h" netns "$hostns"; ip link set "$tag-c" netns "$clientns"
nsx "$hostns" ip link set "$tag-h" name eth0; nsx "$clientns" ip link set "$tag-c" name eth0
nsx "$hostns" ip addr add 192.0.2.1/24 dev eth0; nsx "$hostns" ip link set eth0 up
nsx "$clientns" ip addr add 192.0.2.2/24 dev eth0; nsx "$clientns" ip link set eth0 up
echo "host eth0 192.0.2.1/24 <-> client eth0 192.0.2.2/24 (TEST-NET-1, routed nowhere)"

step "2. The network: conf/10-docker0.conflist (bridge $bridge, $subnet)"
mkdir -p "$work/net.d"
backend_keys=
if [ -n "${DEMO_BACKEND:-}" ]; then
	backend_keys="\"backend\": \"$DEMO_BACKEND\", \"ipMasqBackend\": \"$DEMO_BACKEND\", "
fi
# The same conflist with the reservations and state records kept in $work.
sed -e "s#\"docker0\"#\"$bridge\"#g" -e "s#172.17.0.0/16#$subnet#" -e "s#172.17.0.1#$gateway#" \
	-e "s#\"type\": \"host-local\",#\"type\": \"host-local\", \"dataDir\": \"$work/ipam\",#" \
	-e "s#\"type\": \"\(bridge\|portmap\)\",#\"type\": \"\1\", $backend_keys\"stateDir\": \"$work/state\",#" \
	"$root/conf/10-docker0.conflist" >"$work/net.d/10-docker0.conflist"
cat "$work/net.d/10-docker0.conflist"

cni() {
	nsx "$hostns" env CNI_PATH="$bin" NETCONFPATH="$work/net.d" \
		CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":5000,"protocol":"tcp"}]}' \
		"$cnitool" "$1" "$bridge" "/var/run/netns/$ctrns"
}

step "3. The container: a hello server on :5000, attached with cnitool add (-p 8080:5000)"
ip netns exec "$ctrns" "$bin/hello" serve -port 5000 >"$work/hello.log" 2>&1 & # no function: $! is the server itself
pids+=($!)
cni add
added=1
for _ in $(seq 50); do nsx "$hostns" "$bin/hello" get "http://$ctrip:5000/" >/dev/null 2>&1 && break; sleep 0.1; done

step "4. The client fetches http://192.0.2.1:8080/ (the host's address, not the container's)"
nsx "$clientns" "$bin/hello" get http://192.0.2.1:8080/ | tee "$work/reply"
grep -q '^Hello$' "$work/reply"
echo "(peer= is the client's own address: the container sees who called, no SNAT on the way in)"

if nsx "$hostns" nft list table ip dnet >/dev/null 2>&1; then
	backend=nftables
else
	backend=iptables
fi
if [ "$backend" = nftables ]; then
	step "Hop 1 - PREROUTING (nftables): a packet to a LOCAL address jumps to hostports and is DNATed by a map lookup"
	nsx "$hostns" nft list chain ip dnet prerouting
	nsx "$hostns" nft list chain ip dnet hostports
	nsx "$hostns" nft list map ip dnet hostports
	echo "(one hash lookup per new connection, however many ports are published)"
else
	step "Hop 1 - PREROUTING (iptables): a packet to a LOCAL address jumps to DNET-HOSTPORTS and is DNATed"
	nsx "$hostns" iptables -t nat -L PREROUTING -n -v
	nsx "$hostns" iptables -t nat -L DNET-HOSTPORTS -n -v
	for c in $(nsx "$hostns" iptables -t nat -S | awk '/^-N DNET-DN-/{print $2}'); do
		nsx "$hostns" iptables -t nat -L "$c" -n -v
	done
fi

step "Hop 2 - routing after DNAT: $ctrip is on $bridge, the bridge hands it to the container's veth"
nsx "$hostns" ip route
echo "\$ ip route get $ctrip"; nsx "$hostns" ip route get "$ctrip" | head -n1
echo "\$ ip link show master $bridge"; nsx "$hostns" ip -br link show master "$bridge"
echo "container side:"; nsx "$ctrns" ip -br addr show eth0; nsx "$ctrns" ip route

step "Hop 2b - FORWARD: only drops here; a packet from outside $bridge reaches $ctrip only if it was DNATed to a published port"
if [ "$backend" = nftables ]; then
	nsx "$hostns" nft list chain ip dnet forward
	nsx "$hostns" nft list set ip dnet fwd_protect
else
	nsx "$hostns" iptables -L DNET-FORWARD -n -v
	nsx "$hostns" iptables -t mangle -L DNET-FILTER -n -v  # isolation and icc, before any filter rule
fi
echo "(Docker 28's default; gatewayMode nat-unprotected turns it off, as Kubernetes needs)"

step "Hop 3 - the way back: conntrack rewrites the reply (src $ctrip:5000 -> 192.0.2.1:8080)"
nsx "$hostns" conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null || true
echo "and traffic the container starts is MASQUERADEd to the host's address:"
ip netns exec "$clientns" "$bin/hello" serve -port 6000 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do nsx "$ctrns" "$bin/hello" get http://192.0.2.2:6000/ 2>/dev/null | grep peer= && break; sleep 0.1; done
echo "(a server in the client netns saw the host's 192.0.2.1, not $ctrip)"
if [ "$backend" = nftables ]; then
	nsx "$hostns" nft list chain ip dnet postrouting
	nsx "$hostns" nft list set ip dnet masq_ips
else
	nsx "$hostns" iptables -t nat -L POSTROUTING -n -v
	nsx "$hostns" iptables -t nat -L DNET-MASQ -n -v
fi

step "Which interface each hop crosses"
cat <<HOPS
  client eth0 (192.0.2.2) -> host eth0 (192.0.2.1:8080)
  host: PREROUTING DNAT 192.0.2.1:8080 -> $ctrip:5000, route via $(nsx "$hostns" ip route get "$ctrip" | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1); exit}')
  $bridge -> $(nsx "$hostns" ip -br link show master "$bridge" | awk '{print $1}' | cut -d@ -f1) -> container eth0 ($ctrip:5000)
  reply: container eth0 -> default via $gateway -> host, conntrack un-DNAT -> host eth0 -> client
HOPS

step "The same walk for the live system, in one command: dnetctl explain 8080"
nsx "$hostns" "$bin/dnetctl" -state-dir "$work/state" explain 8080

step "5. Tear down: cnitool del, then the namespaces"
cni del
added=
if { nsx "$hostns" iptables-save -t nat; nsx "$hostns" nft list ruleset; } | grep -q 'DNET-DN-\|-A DNET-MASQ \|net=[^ ]* id='; then
	echo "demo: rules left after DEL" >&2
	exit 1
fi
echo "DEL removed the rules, the veth and the reservation; removing the namespaces leaves the host as it was."
