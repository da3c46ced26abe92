#!/usr/bin/env bash
# The seed scenario, without docker0 or brctl: two hosts in network
# namespaces, each with its own Open vSwitch (userspace datapath) and
# ofctl-agent, a GRE underlay between them, two containers per host plumbed
# with `ofctl-agent attach`, then pings across the tunnel, the ARP responder at
# work, a spoofing attempt dropped, and what the agent shows an operator.
#
#   scripts/demo.sh        run it (as root); leaves everything up for a look
#   scripts/demo.sh docker the same with a Docker Engine per host, the agents
#                          serving Docker's network driver, and docker run
#                          (scripts/demo-docker.sh; needs docker.io)
#   scripts/demo.sh down   remove every namespace, process and file it made
#
# Each checkout is its own instance: DEMO_ID (default: a hash of the checkout's
# path) names its namespaces ofdemo-<id>-* and its directory
# /tmp/ofctl-demo-<id>, so two checkouts run side by side and `down` in one
# never touches the other. The agents run inside their host's namespace
# (listening on that namespace's 127.0.0.1:9750); the addresses (192.0.2.0/24
# underlay, 10.100/16 and 10.200/16 overlay) exist only inside the namespaces.
# Ctrl-C (SIGINT) or SIGTERM during a run removes everything too.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_ID=${DEMO_ID:-$(printf '%s' "$ROOT" | sha256sum | cut -c1-6)}
DEMO_DIR=${DEMO_DIR:-/tmp/ofctl-demo-$DEMO_ID}
NSP=ofdemo-$DEMO_ID- # namespace prefix
BIN=${BIN:-$ROOT/bin/ofctl-agent}
LISTEN=127.0.0.1:9750 # the agent's default, inside each host's namespace
HOSTS=(host-a host-b)
declare -A UNDERLAY=([host-a]=192.0.2.1 [host-b]=192.0.2.2)

DOCKER_MODE=0 # scripts/demo.sh docker: the Docker variant (scripts/demo-docker.sh)
# shellcheck source=scripts/demo-docker.sh
. "$ROOT/scripts/demo-docker.sh"

ok=0 failed=0
if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B= G= R= N=; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
pass() { printf '  %sok%s    %s\n' "$G" "$N" "$*"; ok=$((ok + 1)); }
fail() { printf '  %sFAIL%s  %s\n' "$R" "$N" "$*"; failed=$((failed + 1)); }
check() { if "$@"; then pass "$desc"; else fail "$desc"; return 1; fi; } # desc=... check CMD...
info() { printf '        %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
# Redirect the output of external commands, never of a shell function: while
# a function runs with its output redirected, so does an INT/TERM trap.
nsx() { local ns=$NSP$1; shift; ip netns exec "$ns" "$@"; }
vsctl() { ovs-vsctl --timeout=10 --db="unix:$DEMO_DIR/$1/db.sock" "${@:2}"; }
ofctl() { OVS_RUNDIR="$DEMO_DIR/$1" ovs-ofctl -O OpenFlow13 "${@:2}"; }
agent() { nsx "$1" "$BIN" "${@:2}"; } # an ofctl-agent command on host $1, against its agent

our_namespaces() { ip netns list 2>/dev/null | awk -v p="$NSP" 'index($1, p) == 1 {print $1}'; }

# ours: pid runs with this instance's directory on its command line (a
# recorded pid may have been reused by now).
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$DEMO_DIR/"; }

# kill_all sends signal $1 to every process this instance made: the pids it
# recorded, its own background jobs, and whatever runs in its namespaces.
# By pid, never by name.
kill_all() {
	local sig=$1 pidfile ns pid
	for pidfile in "$DEMO_DIR"/*/*.pid; do
		[ -f "$pidfile" ] && pid=$(cat "$pidfile" 2>/dev/null) && [ -n "$pid" ] && ours "$pid" && kill "-$sig" "$pid" 2>/dev/null
	done
	for pid in $(jobs -p); do kill "-$sig" "$pid" 2>/dev/null; done
	for ns in $(our_namespaces); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "-$sig" "$pid" 2>/dev/null; done
	done
}

down() {
	docker_down_containers
	kill_all TERM
	sleep 0.5
	kill_all KILL
	wait 2>/dev/null
	docker_down_cgroups
	for ns in $(our_namespaces); do ip netns delete "$ns" 2>/dev/null; done
	rm -rf /etc/netns/"$NSP"* # attach's resolv.conf of our namespaces
	rm -rf "$DEMO_DIR"
}

start_host() {
	local h=$1 d=$DEMO_DIR/$1
	mkdir -p "$d"
	ip netns add "$NSP$h" || return 1
	nsx "$h" ip link set lo up
	ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
	ip netns exec "$NSP$h" ovsdb-server --remote="punix:$d/db.sock" --pidfile="$d/ovsdb-server.pid" --unixctl="$d/ovsdb-server.ctl" \
		--log-file="$d/ovsdb-server.log" --detach --no-chdir "$d/conf.db" >/dev/null 2>&1 || return 1
	vsctl "$h" --no-wait init || return 1
	# Default file names under OVS_RUNDIR, as on a real host: the agent finds
	# ovs-vswitchd.<pid>.ctl for ofproto/trace by itself.
	OVS_RUNDIR=$d ip netns exec "$NSP$h" ovs-vswitchd "unix:$d/db.sock" --pidfile="$d/ovs-vswitchd.pid" \
		--log-file="$d/ovs-vswitchd.log" --disable-system --detach --no-chdir >/dev/null 2>&1
}

underlay() {
	ip -n "${NSP}host-a" link add ul0 type veth peer name ul0 netns "${NSP}host-b" || return 1
	for h in "${HOSTS[@]}"; do
		vsctl "$h" add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy ul0 &&
			nsx "$h" ip link set ul0 up &&
			nsx "$h" ip addr add "${UNDERLAY[$h]}/24" dev br-phy &&
			nsx "$h" ip link set br-phy up || return 1
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
	local h=$1 d=$DEMO_DIR/$1 extra=()
	[ "$DOCKER_MODE" = 1 ] && read -ra extra <<<"$(docker_agent_args "$h")"
	# A simple command, not a function, so that $! is the agent itself.
	ip netns exec "$NSP$h" "$BIN" run --node-name "$h" --ovsdb "unix:$d/db.sock" --ovs-rundir "$d" --datapath-type netdev \
		--tunnel-ip "${UNDERLAY[$h]}" --cluster-file "$DEMO_DIR/cluster.yaml" --listen "$LISTEN" --api-socket "$d/agent.sock" \
		"${extra[@]}" >"$d/agent.log" 2>&1 &
	echo $! >"$d/agent.pid"
}

http_get() { nsx "$1" curl -fsS --max-time 5 "http://$LISTEN$2"; } # host path

wait_ready() {
	for _ in $(seq 100); do
		nsx "$1" curl -fs -o /dev/null --max-time 2 "http://$LISTEN/readyz" && return 0
		sleep 0.1
	done
	return 1
}

attach() { # host container network [attach flags]
	local h=$1 c=$2 net=$3
	ip netns add "$NSP$c" || return 1
	nsx "$c" ip link set lo up
	nsx "$c" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	attach_port "$h" "$c" "$net" "${@:4}"
}

attach_port() { # host container network [attach flags]: ofctl-agent attach for this instance
	"$BIN" attach --ovsdb "unix:$DEMO_DIR/$1/db.sock" --netns-host "/var/run/netns/$NSP$1" \
		--agent-socket "$DEMO_DIR/$1/agent.sock" --network "$3" "${@:4}" "/var/run/netns/$NSP$2"
}

detach_port() { # host container [detach flags]
	"$BIN" detach --ovsdb "unix:$DEMO_DIR/$1/db.sock" --netns-host "/var/run/netns/$NSP$1" "${@:3}" "/var/run/netns/$NSP$2"
}

ip_of() { nsx "$1" ip -4 -o addr show eth1 | awk '{print $4}' | cut -d/ -f1; }
mac_of() { nsx "$1" cat /sys/class/net/eth1/address; }
port_of() { vsctl "$1" --bare --columns=name find interface "external_ids:container_id=/var/run/netns/$NSP$2"; }
ping_ok() { ip netns exec "$NSP$1" ping -n -q -c "${3:-3}" -i 0.2 -W 1 "${@:4}" "$2" >/dev/null 2>&1; } # from to [count [ping flags]]
eventually() { for _ in $(seq 50); do "$@" && return 0; sleep 0.1; done; return 1; } # CMD holds within 5 s
shows() { # TEXT WORD...: prints TEXT, true when it holds every WORD
	local text=$1 w
	printf '%s\n' "$text"
	shift
	for w; do [[ $text == *"$w"* ]] || return 1; done
}

phase_hosts() {
	step "Two hosts, each with its own Open vSwitch (userspace datapath), GRE underlay 192.0.2.0/24"
	for h in "${HOSTS[@]}"; do start_host "$h" || die "could not start OVS for $h (see $DEMO_DIR/$h)"; done
	desc="host-a 192.0.2.1 <-> host-b 192.0.2.2 on br-phy" check underlay
	desc="host-a's uplink 198.51.100.1 to the outside 198.51.100.2 (TEST-NET-2), its default route" check uplink
	write_cluster
}

# uplink gives host-a "the rest of the world": a namespace behind a veth, in
# TEST-NET-2, that knows nothing of the containers' subnets.
uplink() {
	ip netns add "${NSP}out" || return 1
	nsx out ip link set lo up
	ip -n "${NSP}host-a" link add up0 type veth peer name eth0 netns "${NSP}out" &&
		nsx host-a ip addr add 198.51.100.1/24 dev up0 && nsx host-a ip link set up0 up &&
		nsx out ip addr add 198.51.100.2/24 dev eth0 && nsx out ip link set eth0 up &&
		nsx host-a ip route add default via 198.51.100.2
}

phase_agents() {
	step "ofctl-agent on each host (static cluster view: networks blue and red)"
	local h mode
	for h in "${HOSTS[@]}"; do start_agent "$h"; done
	for h in "${HOSTS[@]}"; do
		desc="$h: agent ready, pipeline in OVS" check wait_ready "$h" || info "see $DEMO_DIR/$h/agent.log"
	done
	for h in "${HOSTS[@]}"; do
		mode=$(vsctl "$h" get bridge br-int fail_mode)
		desc="$h: br-int fail_mode=$mode, protocols=$(vsctl "$h" get bridge br-int protocols)" check [ "$mode" = secure ]
	done
}

phase_attach() {
	step "Containers plumbed with ofctl-agent attach (replaces ovs-docker add-port)"
	attach host-a a1 blue && attach host-a a2 red && attach host-b b1 blue && attach host-b b2 red ||
		fail "attach failed"
	for c in a1 a2 b1 b2; do info "$c: eth1 $(ip_of "$c") $(mac_of "$c")"; done
}

phase_pings() {
	step "Pings across the GRE tunnel"
	sleep 0.5
	ip netns exec "${NSP}host-a" tcpdump -i ul0 -nn -U -w "$DEMO_DIR/underlay.pcap" proto gre >/dev/null 2>&1 &
	tcpdump_pid=$!
	echo "$tcpdump_pid" >"$DEMO_DIR/host-a/tcpdump.pid"
	sleep 1
	desc="a1 -> b1 (blue, host-a -> host-b)" check ping_ok a1 "$(ip_of b1)"
	desc="a2 -> b2 (red, host-a -> host-b)" check ping_ok a2 "$(ip_of b2)"
	desc="b1 -> a1 (blue, host-b -> host-a)" check ping_ok b1 "$(ip_of a1)"
	nsx a1 ip route replace 10.200.0.0/16 dev eth1
	desc="a1 (blue) cannot reach b2 (red): networks are isolated" check unreachable a1 "$(ip_of b2)"
}

phase_arp() {
	step "The ARP responder: answers come from the flows, no ARP crosses the tunnel"
	sleep 1
	kill "$tcpdump_pid" 2>/dev/null
	wait "$tcpdump_pid" 2>/dev/null
	rm -f "$DEMO_DIR/host-a/tcpdump.pid"
	gre=$(tcpdump -r "$DEMO_DIR/underlay.pcap" -nn 2>/dev/null | wc -l)
	arp=$(tcpdump -r "$DEMO_DIR/underlay.pcap" -nn -e 2>/dev/null | grep -c ARP)
	desc="underlay: $gre GRE packets, $arp with ARP inside" check [ "$gre" -gt 0 -a "$arp" -eq 0 ]
	neigh=$(nsx a1 ip neigh show "$(ip_of b1)")
	desc="a1 resolved b1: ${neigh:-nothing}" check [ -n "$neigh" ]
}

phase_spoof() {
	step "Spoofing: a1 sends from an address it does not own"
	local port before after
	port=$(vsctl host-a --bare --columns=ofport find interface "external_ids:container_id=/var/run/netns/${NSP}a1")
	spoof_drops() { ofctl host-a dump-flows br-int "table=1,in_port=$port" | grep 'priority=100,' | grep -o 'n_packets=[0-9]*' | cut -d= -f2; }
	before=$(spoof_drops)
	nsx a1 ip addr add 10.100.1.200/16 dev eth1
	desc="ping from forged source 10.100.1.200 reaches nobody" check unreachable a1 "$(ip_of b1)" -I 10.100.1.200
	after=$(spoof_drops)
	desc="host-a's spoof-guard drop flow for a1 counted them: ${before:-?} -> ${after:-?} packets" \
		check [ "${after:-0}" -gt "${before:-0}" ]
	nsx a1 ip addr del 10.100.1.200/16 dev eth1
}

phase_detach() {
	step "Detach and attach again: the agent follows the ports (README: attach / detach)"
	local a2ip b2ip
	a2ip=$(ip_of a2) b2ip=$(ip_of b2)
	info "\$ ofctl-agent detach --ifname eth1 /var/run/netns/${NSP}a2"
	detach_port host-a a2 --ifname eth1
	info "\$ ofctl-agent detach --all /var/run/netns/${NSP}b2"
	detach_port host-b b2 --all
	desc="a2 and b2 have no port left in OVS" check no_port host-a a2 host-b b2
	desc="host-a's agent removed a2's flows (ovs-ofctl)" check eventually ovs_lacks host-a "$a2ip"
	info "\$ ofctl-agent attach --network red --ip $a2ip/16 /var/run/netns/${NSP}a2"
	attach_port host-a a2 red --ip "$a2ip/16"
	info "\$ ofctl-agent attach --network red /var/run/netns/${NSP}b2   (next free address)"
	attach_port host-b b2 red
	desc="b2 got its address back: ${b2ip} -> $(ip_of b2)" check [ "$(ip_of b2)" = "$b2ip" ]
	desc="a2 -> b2 again (red, host-a -> host-b)" check eventually ping_ok a2 "$b2ip" 1
}

phase_outside() {
	step "North-south: a container reaches the outside through its host's gateway (NAT), a published port answers"
	local a1ip srcs out
	a1ip=$(ip_of a1)
	mkdir -p "$DEMO_DIR/www" && echo "hello from the outside" >"$DEMO_DIR/www/index.html"
	nsx out busybox httpd -p 198.51.100.2:80 -h "$DEMO_DIR/www"
	# A simple command, not a function, so that $! is tcpdump itself.
	ip netns exec "${NSP}out" tcpdump -i eth0 -nn -U -w "$DEMO_DIR/outside.pcap" ip >/dev/null 2>&1 &
	echo $! >"$DEMO_DIR/host-a/tcpdump-out.pid"
	eventually [ -s "$DEMO_DIR/outside.pcap" ] # its file header: it captures
	sleep 0.5
	info "a1 ($a1ip): $(nsx a1 ip route show default)"
	desc="a1 -> 198.51.100.2 (ping, through host-a's gateway)" check ping_ok a1 198.51.100.2
	out=$(nsx a1 curl -sS --max-time 5 http://198.51.100.2/)
	desc="a1 downloads http://198.51.100.2/: ${out:-nothing}" check [ "$out" = "hello from the outside" ]
	sleep 0.5
	kill "$(cat "$DEMO_DIR/host-a/tcpdump-out.pid")" 2>/dev/null
	wait "$(cat "$DEMO_DIR/host-a/tcpdump-out.pid")" 2>/dev/null
	rm -f "$DEMO_DIR/host-a/tcpdump-out.pid"
	info "tcpdump in the outside: $(tcpdump -r "$DEMO_DIR/outside.pcap" -nn 2>/dev/null | wc -l) packets"
	srcs=$(tcpdump -r "$DEMO_DIR/outside.pcap" -nn 2>/dev/null | awk '$2 == "IP" {split($3, a, "."); print a[1]"."a[2]"."a[3]"."a[4]}' | sort -u | tr '\n' ' ')
	desc="the outside saw only host-a's address and its own (masqueraded): $srcs" check [ "$srcs" = "198.51.100.1 198.51.100.2 " ]
	info "\$ ofctl-agent attach --network blue --publish 8080:80 /var/run/netns/${NSP}a3"
	attach host-a a3 blue --publish 8080:80 || fail "attach --publish failed"
	mkdir -p "$DEMO_DIR/www-a3" && echo "hello from a3" >"$DEMO_DIR/www-a3/index.html"
	nsx a3 busybox httpd -p 80 -h "$DEMO_DIR/www-a3"
	out=$(nsx out curl -sS --max-time 5 http://198.51.100.1:8080/)
	desc="the outside reaches a3's port 80 at host-a's 198.51.100.1:8080: ${out:-nothing}" check [ "$out" = "hello from a3" ]
	out=$(nsx host-a curl -sS --max-time 5 http://198.51.100.1:8080/)
	desc="host-a itself reaches it too: ${out:-nothing}" check [ "$out" = "hello from a3" ]
	info "\$ nft list chain ip ofctl-agent published   (on host-a)"
	nsx host-a nft list chain ip ofctl-agent published
}

# The checks below fail when their observer fails: a negation must not turn
# an error (no address, a dead switch) into a pass.
unreachable() { [ -n "$2" ] && ! ping_ok "$1" "$2" 2 "${@:3}"; } # from ip [ping flags]
no_port() { # host container [host container...]: no OVS port left for them
	local out
	while [ $# -ge 2 ]; do
		out=$(vsctl "$1" --bare --columns=name find interface "external_ids:container_id=/var/run/netns/$NSP$2") && [ -z "$out" ] || return 1
		shift 2
	done
}
ovs_lacks() { local out; out=$(ofctl "$1" dump-flows br-int) && [ -n "$2" ] && ! grep -qwF "$2" <<<"$out"; } # host ip

phase_operator() {
	step "What the operator sees on host-a (README: Operating it)"
	local a1port b1ip out
	a1port=$(port_of host-a a1) b1ip=$(ip_of b1)
	info "\$ ofctl-agent dump-flows"
	agent host-a dump-flows
	info "\$ ofctl-agent dump-flows --status missing,unexpected,different"
	desc="OVS holds exactly the flows the agent wants (dump-flows exit 0)" check \
		agent host-a dump-flows --status missing,unexpected,different
	info "\$ ofctl-agent dump-flows --endpoint $(ip_of a1)"
	agent host-a dump-flows --endpoint "$(ip_of a1)"
	info "\$ ofctl-agent trace in_port=$a1port arp_tpa=$b1ip"
	out=$(agent host-a trace "in_port=$a1port" "arp_tpa=$b1ip")
	desc="trace: host-a's flows answer a1's ARP for b1 themselves, and OVS agrees" check shows "$out" AGREE IN_PORT
	info "\$ ofctl-agent trace icmp,in_port=$a1port,nw_dst=$b1ip"
	out=$(agent host-a trace "icmp,in_port=$a1port,nw_dst=$b1ip")
	desc="trace: a1's ping to b1 goes into the tunnel to 192.0.2.2, and OVS agrees" check shows "$out" AGREE 192.0.2.2
	info "\$ curl -s localhost:9750/metrics | grep -E 'ofctl_agent_(ready|ovsdb_connected|openflow_connected)'"
	out=$(nsx host-a curl -s localhost:9750/metrics | grep -E 'ofctl_agent_(ready|ovsdb_connected|openflow_connected)')
	desc="host-a's agent: ready, OVSDB and OpenFlow connected" check \
		shows "$out" "ofctl_agent_ready 1" "ofctl_agent_ovsdb_connected 1" "ofctl_agent_openflow_connected 1"
	info "\$ curl -s localhost:9750/metrics   (per-port counters, some of them)"
	http_get host-a /metrics | grep -E '^ofctl_agent_(endpoints|desired_flows|flow_mods_total|port_(receive|transmit)_packets_total|spoof_drops)' | head -20
	info "\$ ovs-appctl ovs/route/show; ovs-appctl tnl/neigh/show   (the underlay as OVS tunnels over it)"
	out=$(OVS_RUNDIR=$DEMO_DIR/host-a ovs-appctl ovs/route/show)
	desc="host-a's OVS routes the underlay 192.0.2.0/24 via br-phy" check shows "$out" "192.0.2.0/24 dev br-phy"
	out=$(OVS_RUNDIR=$DEMO_DIR/host-a ovs-appctl tnl/neigh/show)
	desc="host-a's OVS knows host-b's underlay neighbour" check shows "$out" "192.0.2.2"
}

interrupted() {
	trap '' INT TERM # cleanup is not interruptible
	echo
	echo "interrupted: cleaning up"
	down
	exit 130
}

run() {
	[ "$(id -u)" -eq 0 ] || die "run as root (it creates namespaces and OVS instances)"
	[ -x "$BIN" ] || die "$BIN missing: run 'make build' (make demo does)"
	command -v curl >/dev/null || die "curl missing: run scripts/setup-host.sh (make demo does)"
	if [ "$DOCKER_MODE" = 1 ]; then
		for t in dockerd docker busybox nsenter unshare; do
			command -v "$t" >/dev/null || die "$t missing: the Docker variant needs Docker (Debian's docker.io) and busybox-static; 'make demo' runs without them"
		done
	fi
	trap interrupted INT TERM
	down
	mkdir -p "$DEMO_DIR"
	echo "demo: instance $DEMO_ID (namespaces ${NSP}*, files in $DEMO_DIR)"
	phase_hosts
	[ "$DOCKER_MODE" = 1 ] && phase_docker_engines
	phase_agents
	phase_attach
	phase_pings
	phase_arp
	phase_spoof
	phase_detach
	phase_outside
	[ "$DOCKER_MODE" = 1 ] && phase_docker
	phase_operator
	step "Summary: $ok ok, $failed failed"
	echo "Everything is still running: look around with e.g."
	echo "  ip netns exec ${NSP}a1 ping $(ip_of b1)"
	echo "  ip netns exec ${NSP}host-a $BIN dump-flows"
	echo "  OVS_RUNDIR=$DEMO_DIR/host-a ovs-ofctl -O OpenFlow13 dump-flows br-int"
	[ "$DOCKER_MODE" = 1 ] && echo "  docker -H unix://$(dkdir host-b)/docker.sock run --rm --network blue $DOCKER_IMAGE ping -c 3 10.100.1.20"
	echo "then 'make demo-down' removes it all."
	[ "$DOCKER_MODE" = 1 ] || ! command -v dockerd >/dev/null ||
		echo "Docker is installed: 'make demo-docker' runs this demo with real docker run on the same network."
	[ "$failed" -eq 0 ]
}

[[ $DEMO_DIR == /?*/?* ]] || die "DEMO_DIR=$DEMO_DIR: want an absolute path at least two levels deep (down removes it)"
case "${1:-run}" in
run) run ;;
docker) DOCKER_MODE=1 run ;;
down) down && echo "demo: instance $DEMO_ID removed" ;;
*) die "usage: $0 [run|docker|down]" ;;
esac
