#!/usr/bin/env bash
# The seed scenario, without docker0 or brctl: two hosts in network
# namespaces, each with its own Open vSwitch (userspace datapath) and
# ofctl-agent, a GRE underlay between them, two containers per host plumbed
# with `ofctl-agent attach`, then pings across the tunnel, the ARP responder at
# work, a spoofing attempt dropped, and what the agent shows an operator.
#
#   scripts/demo.sh        run it (as root); leaves everything up for a look
#   scripts/demo.sh down   remove every namespace, process and file it made
#
# Everything lives in namespaces named ofdemo-* and under $DEMO_DIR; the
# addresses (192.0.2.0/24 underlay, 10.100/16 and 10.200/16 overlay) exist only
# inside those namespaces.
set -uo pipefail

DEMO_DIR=${DEMO_DIR:-/tmp/ofctl-demo}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin/ofctl-agent}
HOSTS=(host-a host-b)
declare -A UNDERLAY=([host-a]=192.0.2.1 [host-b]=192.0.2.2)
declare -A LISTEN=([host-a]=127.0.0.1:19751 [host-b]=127.0.0.1:19752)

ok=0 failed=0
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pass() { printf '  \033[32mok\033[0m    %s\n' "$*"; ok=$((ok + 1)); }
fail() { printf '  \033[31mFAIL\033[0m  %s\n' "$*"; failed=$((failed + 1)); }
info() { printf '        %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
vsctl() { ovs-vsctl --timeout=10 --db="unix:$DEMO_DIR/$1/db.sock" "${@:2}"; }
ofctl() { OVS_RUNDIR="$DEMO_DIR/$1" ovs-ofctl -O OpenFlow13 "${@:2}"; }

down() {
	# Processes by the pids we recorded, never by name.
	for pidfile in "$DEMO_DIR"/*/*.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null)
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	sleep 0.3
	for pidfile in "$DEMO_DIR"/*/*.pid; do
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^ofdemo-'); do
		ip netns delete "$ns" 2>/dev/null
	done
	rm -rf "$DEMO_DIR"
}

start_host() {
	local h=$1 d=$DEMO_DIR/$1 ns=ofdemo-$1
	mkdir -p "$d"
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
	ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
	nsx "$ns" ovsdb-server --remote="punix:$d/db.sock" --pidfile="$d/ovsdb.pid" --unixctl="$d/ovsdb.ctl" \
		--log-file="$d/ovsdb.log" --detach --no-chdir "$d/conf.db" >/dev/null 2>&1 || return 1
	vsctl "$h" --no-wait init
	OVS_RUNDIR=$d nsx "$ns" ovs-vswitchd "unix:$d/db.sock" --pidfile="$d/ovs-vswitchd.pid" \
		--unixctl="$d/ovs-vswitchd.ctl" --log-file="$d/ovs-vswitchd.log" --disable-system --detach --no-chdir \
		>/dev/null 2>&1
}

underlay() {
	ip -n ofdemo-host-a link add ul0 type veth peer name ul0 netns ofdemo-host-b
	for h in "${HOSTS[@]}"; do
		local ns=ofdemo-$h
		vsctl "$h" add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy ul0
		nsx "$ns" ip link set ul0 up
		nsx "$ns" ip addr add "${UNDERLAY[$h]}/24" dev br-phy
		nsx "$ns" ip link set br-phy up
	done
}

write_cluster() {
	cat >"$DEMO_DIR/cluster.yaml" <<-EOF
		networks:
		  - { name: blue, vni: 100, subnet: 10.100.0.0/16 }
		  - { name: red, vni: 200, subnet: 10.200.0.0/16 }
		hosts:
		  - name: host-a
		    tunnel_ip: 192.0.2.1
		    ranges: { blue: 10.100.1.0/24, red: 10.200.1.0/24 }
		  - name: host-b
		    tunnel_ip: 192.0.2.2
		    ranges: { blue: 10.100.2.0/24, red: 10.200.2.0/24 }
	EOF
}

start_agent() {
	local h=$1 d=$DEMO_DIR/$1
	"$BIN" run --node-name "$h" --ovsdb "unix:$d/db.sock" --ovs-rundir "$d" --datapath-type netdev \
		--tunnel-ip "${UNDERLAY[$h]}" --cluster-file "$DEMO_DIR/cluster.yaml" --listen "${LISTEN[$h]}" \
		>"$d/agent.log" 2>&1 &
	echo $! >"$d/agent.pid"
}

http_get() { # URL -> body on stdout; curl when present, else bash's /dev/tcp
	if command -v curl >/dev/null; then
		curl -fsS --max-time 5 "$1"
		return
	fi
	local hostport=${1#http://} path=/${1#http://*/}
	exec 3<>"/dev/tcp/${hostport%%/*}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: x\r\n\r\n' "$path" >&3
	sed '1,/^\r$/d' <&3
	exec 3>&-
}

wait_ready() {
	local h=$1
	for _ in $(seq 100); do
		http_get "http://${LISTEN[$h]}/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

attach() { # host container network
	local h=$1 c=$2 net=$3
	ip netns add "ofdemo-$c"
	nsx "ofdemo-$c" ip link set lo up
	nsx "ofdemo-$c" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	"$BIN" attach --ovsdb "unix:$DEMO_DIR/$h/db.sock" --netns-host "/var/run/netns/ofdemo-$h" \
		--node-name "$h" --cluster-file "$DEMO_DIR/cluster.yaml" --network "$net" "/var/run/netns/ofdemo-$c"
}

ip_of() { nsx "ofdemo-$1" ip -4 -o addr show eth1 | awk '{print $4}' | cut -d/ -f1; }
mac_of() { nsx "ofdemo-$1" cat /sys/class/net/eth1/address; }
ping_ok() { nsx "ofdemo-$1" ping -n -q -c "${3:-3}" -i 0.2 -W 1 "$2" >/dev/null 2>&1; }

run() {
	[ "$(id -u)" -eq 0 ] || die "run as root (it creates namespaces and OVS instances)"
	[ -x "$BIN" ] || die "$BIN missing: run 'make build' (make demo does)"
	down
	mkdir -p "$DEMO_DIR"
	trap 'echo; echo "interrupted: cleaning up"; down; exit 130' INT TERM

	step "Two hosts, each with its own Open vSwitch (userspace datapath), GRE underlay 192.0.2.0/24"
	for h in "${HOSTS[@]}"; do start_host "$h" || die "could not start OVS for $h"; done
	underlay && pass "host-a 192.0.2.1 <-> host-b 192.0.2.2 on br-phy"
	write_cluster

	step "ofctl-agent on each host (static cluster view: networks blue and red)"
	for h in "${HOSTS[@]}"; do start_agent "$h"; done
	for h in "${HOSTS[@]}"; do
		if wait_ready "$h"; then pass "$h: agent ready, pipeline in OVS"; else fail "$h: agent not ready (see $DEMO_DIR/$h/agent.log)"; fi
	done
	for h in "${HOSTS[@]}"; do
		mode=$(vsctl "$h" get bridge br-int fail_mode)
		[ "$mode" = secure ] && pass "$h: br-int fail_mode=$mode, protocols=$(vsctl "$h" get bridge br-int protocols)" || fail "$h: fail_mode=$mode"
	done

	step "Containers plumbed with ofctl-agent attach (replaces ovs-docker add-port)"
	attach host-a a1 blue && attach host-a a2 red && attach host-b b1 blue && attach host-b b2 red ||
		fail "attach failed"
	for c in a1 a2 b1 b2; do info "$c: eth1 $(ip_of "$c") $(mac_of "$c")"; done

	step "Pings across the GRE tunnel"
	sleep 0.5
	tcpdump_pid=
	nsx ofdemo-host-a tcpdump -i ul0 -nn -U -w "$DEMO_DIR/underlay.pcap" proto gre >/dev/null 2>&1 &
	tcpdump_pid=$!
	echo "$tcpdump_pid" >"$DEMO_DIR/host-a/tcpdump.pid"
	sleep 1
	ping_ok a1 "$(ip_of b1)" && pass "a1 -> b1 (blue, host-a -> host-b)" || fail "a1 -> b1"
	ping_ok a2 "$(ip_of b2)" && pass "a2 -> b2 (red, host-a -> host-b)" || fail "a2 -> b2"
	ping_ok b1 "$(ip_of a1)" && pass "b1 -> a1 (blue, host-b -> host-a)" || fail "b1 -> a1"
	nsx ofdemo-a1 ip route add 10.200.0.0/16 dev eth1 2>/dev/null
	ping_ok a1 "$(ip_of b2)" 2 && fail "a1 (blue) reached b2 (red)" || pass "a1 (blue) cannot reach b2 (red): networks are isolated"

	step "The ARP responder: answers come from the flows, no ARP crosses the tunnel"
	sleep 1
	kill "$tcpdump_pid" 2>/dev/null
	wait "$tcpdump_pid" 2>/dev/null
	gre=$(tcpdump -r "$DEMO_DIR/underlay.pcap" -nn 2>/dev/null | wc -l)
	arp=$(tcpdump -r "$DEMO_DIR/underlay.pcap" -nn -e 2>/dev/null | grep -c ARP)
	[ "$gre" -gt 0 ] && [ "$arp" -eq 0 ] && pass "underlay: $gre GRE packets, $arp with ARP inside" || fail "underlay: $gre GRE packets, $arp with ARP inside"
	neigh=$(nsx ofdemo-a1 ip neigh show "$(ip_of b1)")
	[ -n "$neigh" ] && pass "a1 resolved b1: $neigh" || fail "a1 has no neighbour entry for b1"

	step "Spoofing: a1 sends from an address it does not own"
	a1port=$(vsctl host-a --bare --columns=ofport find interface external_ids:container_id=/var/run/netns/ofdemo-a1)
	spoof_drops() { ofctl host-a dump-flows br-int "table=1,in_port=$a1port" | grep 'priority=100,' | grep -o 'n_packets=[0-9]*' | cut -d= -f2; }
	before=$(spoof_drops)
	nsx ofdemo-a1 ip addr add 10.100.1.200/16 dev eth1
	nsx ofdemo-a1 ping -n -q -c 2 -W 1 -I 10.100.1.200 "$(ip_of b1)" >/dev/null 2>&1 &&
		fail "spoofed ping got through" || pass "ping from forged source 10.100.1.200 reaches nobody"
	after=$(spoof_drops)
	nsx ofdemo-a1 ip addr del 10.100.1.200/16 dev eth1

	step "What the operator sees on host-a"
	if "$BIN" dump-flows -h >/dev/null 2>&1; then
		"$BIN" dump-flows --listen "${LISTEN[host-a]}" | head -60
	else
		ofctl host-a dump-flows br-int --no-stats
	fi
	echo
	http_get "http://${LISTEN[host-a]}/metrics" | grep -E '^ofctl_agent_(ready|endpoints|desired_flows|flow_mods_total|port_(receive|transmit)_packets_total|spoof_drops)' | head -20

	kill "$tcpdump_pid" 2>/dev/null
	step "Summary: $ok ok, $failed failed"
	echo "Everything is still running: look around with e.g."
	echo "  ip netns exec ofdemo-a1 ping $(ip_of b1)"
	echo "  OVS_RUNDIR=$DEMO_DIR/host-a ovs-ofctl -O OpenFlow13 dump-flows br-int"
	echo "then 'make demo-down' removes it all."
	[ "$failed" -eq 0 ]
}

case "${1:-run}" in
run) run ;;
down) down && echo "demo: removed" ;;
*) die "usage: $0 [run|down]" ;;
esac
