# shellcheck shell=bash
# The Docker variant of the demo (scripts/demo.sh docker, make demo-docker),
# sourced by demo.sh: a dockerd per demo host, in the host's network
# namespace and a private mount namespace of its own (dockerd 20.10 fixes
# /run/docker/plugins: each engine must see only its own host's agent), the
# agents serving Docker's network and IPAM driver, and real `docker run`.
# down() calls docker_down: containers removed through their engine first,
# then whatever is left in the engines' cgroups killed, by pid.

DOCKER_CGROUP=ofdemo-$DEMO_ID-docker- # + host: each engine's --cgroup-parent
DOCKER_IMAGE=ofdemo-busybox

dkdir() { echo "$DEMO_DIR/$1/docker"; }
dkr() { docker -H "unix://$(dkdir "$1")/docker.sock" "${@:2}"; }                       # host docker-args
dkq() { docker -H "unix://$(dkdir "$1")/docker.sock" "${@:2}" >/dev/null 2>&1; }       # the same, quiet

# The mount namespace of an engine: /run and /etc/docker fresh, the plugin
# directory its own (where its host's agent puts ofctl-agent.sock). A slave
# of the host's, so dockerd's mounts stay inside and vanish with it.
# shellcheck disable=SC2016
DOCKER_HOLDER='set -e
mount -t tmpfs -o mode=0755 ofdemo-run /run
mkdir -p /run/docker/plugins
mount --bind "$1/plugins" /run/docker/plugins
mount -t tmpfs -o mode=0755 ofdemo-etc-docker /etc/docker
echo ok > "$1/mnt-ready"
exec sleep infinity'

start_docker() { # host
	local h=$1 d holder drv=vfs
	d=$(dkdir "$h")
	mkdir -p "$d/plugins" "$d/data" "$d/exec"
	grep -q $'\toverlay$' /proc/filesystems && drv=overlay2
	printf '{"storage-driver": "%s", "shutdown-timeout": 2}\n' "$drv" >"$d/daemon.json"
	# nsenter, not ip netns exec: that remounts /sys and dockerd then
	# finds no cgroups. Both exec in place: $! is the holder, then dockerd.
	nsenter --net="/var/run/netns/$NSP$h" unshare --mount --propagation slave sh -c "$DOCKER_HOLDER" ofdemo-holder "$d" \
		>"$d/holder.log" 2>&1 &
	holder=$!
	echo "$holder" >"$DEMO_DIR/$h/docker-holder.pid"
	for _ in $(seq 50); do [ -f "$d/mnt-ready" ] && break; sleep 0.1; done
	[ -f "$d/mnt-ready" ] || return 1
	nsenter --mount="/proc/$holder/ns/mnt" --net="/var/run/netns/$NSP$h" dockerd --data-root "$d/data" --exec-root "$d/exec" \
		-H "unix://$d/docker.sock" --pidfile "$d/docker.pid" --config-file "$d/daemon.json" --cgroup-parent "/$DOCKER_CGROUP$h" \
		>"$d/dockerd.log" 2>&1 &
	echo $! >"$DEMO_DIR/$h/dockerd.pid"
	for _ in $(seq 300); do dkq "$h" version && return 0; sleep 0.1; done
	return 1
}

# docker_image imports busybox-static's binary and its applets as an image
# (nothing is pulled).
docker_image() { # host
	local root
	root=$(mktemp -d "$DEMO_DIR/rootfs.XXXXXX") || return 1
	mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
	cp "$(command -v busybox)" "$root/bin/busybox" || return 1
	for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
	tar -C "$root" -c . | docker -H "unix://$(dkdir "$1")/docker.sock" import -c 'ENV PATH=/bin' - "$DOCKER_IMAGE" >/dev/null
	local rc=$?
	rm -rf "$root"
	return $rc
}

# docker_agent_args are the agent's flags for serving the Docker plugin.
docker_agent_args() { # host
	echo --docker-plugin "$(dkdir "$1")/plugins/ofctl-agent.sock" --docker-state "$DEMO_DIR/$1/docker-networks.json" \
		--docker-host "unix://$(dkdir "$1")/docker.sock"
}

phase_docker_engines() {
	step "A Docker Engine on each host (dockerd in the host's namespace)"
	local h
	for h in "${HOSTS[@]}"; do
		desc="$h: dockerd up ($(dkdir "$h"))" check start_docker "$h" || info "see $(dkdir "$h")/dockerd.log"
		desc="$h: image $DOCKER_IMAGE from busybox-static (nothing pulled)" check docker_image "$h"
	done
}

phase_docker() {
	step "With Docker: the agents serve Docker's network and IPAM driver ofctl-agent (README: With Docker)"
	local h out port
	for h in "${HOSTS[@]}"; do
		info "$h\$ docker network create -d ofctl-agent --ipam-driver ofctl-agent --ipam-opt network=blue --subnet 10.100.0.0/16 blue"
		desc="$h: Docker network blue bound to the cluster's blue" check \
			dkq "$h" network create -d ofctl-agent --ipam-driver ofctl-agent --ipam-opt network=blue --subnet 10.100.0.0/16 blue
	done
	out=$(dkr host-a network create -d ofctl-agent --ipam-driver ofctl-agent --ipam-opt network=purple purple 2>&1)
	desc="a network the cluster view does not know is refused" check shows "$out" 'network "purple" is not in the cluster view'
	info "host-a\$ docker run -d --name web --network blue --ip 10.100.1.20 busybox httpd -f -p 80 -h /etc"
	desc="host-a: web runs on blue" check dkq host-a run -d --name web --network blue --ip 10.100.1.20 "$DOCKER_IMAGE" httpd -f -p 80 -h /etc
	info "host-b\$ docker run --rm --network blue busybox ping -c 3 10.100.1.20"
	desc="host-b: a container reaches web on host-a across the tunnel" check dkq host-b run --rm --network blue "$DOCKER_IMAGE" ping -c 3 10.100.1.20
	out=$(dkr host-b run --rm --network blue "$DOCKER_IMAGE" wget -q -O - http://10.100.1.20/hostname 2>&1)
	desc="host-b: wget http://10.100.1.20/hostname over TCP answers web's hostname" check [ "$out" = "$(dkr host-a inspect --format '{{.Config.Hostname}}' web)" ]
	desc="b1 (plumbed with attach) -> web (docker run): one network" check eventually ping_ok b1 10.100.1.20 1
	port=$(vsctl host-a --bare --columns=name find interface external_ids:ofctl-agent.owner=docker)
	info "\$ ovs-vsctl get interface $port external_ids"
	info "$(vsctl host-a get interface "$port" external_ids)"
	desc="web's OVS port $port carries the agent's installed mark" check \
		[ "$(vsctl host-a get interface "$port" external_ids:ofctl-agent.installed)" = '"10.100.1.20"' ]
	info "host-a\$ docker network inspect blue --format '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}'"
	info "$(dkr host-a network inspect blue --format '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}')"
	dkq host-a rm -f web
	desc="docker rm -f web: its port is gone (ovs-vsctl) and its flows (ovs-ofctl)" check \
		eventually docker_port_gone host-a 10.100.1.20
	dkq host-a run -d --name web --network blue --ip 10.100.1.20 "$DOCKER_IMAGE" httpd -f -p 80 -h /etc ||
		fail "web could not be started again"
}

docker_port_gone() { # host ip
	local out
	out=$(vsctl "$1" --bare --columns=name find interface external_ids:ofctl-agent.owner=docker) && [ -z "$out" ] && ovs_lacks "$1" "$2"
}

# docker_down removes the containers through their engines (while the
# agents still answer), then, after kill_all, whatever runs in the engines'
# cgroups, and the cgroups.
docker_down_containers() {
	local h ids
	for h in "${HOSTS[@]}"; do
		[ -S "$(dkdir "$h")/docker.sock" ] || continue
		ids=$(timeout 10 docker -H "unix://$(dkdir "$h")/docker.sock" ps -aq 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$ids" ] && timeout 30 docker -H "unix://$(dkdir "$h")/docker.sock" rm -f $ids >/dev/null 2>&1
	done
}

docker_down_cgroups() {
	local dir pid d
	for dir in /sys/fs/cgroup/*/"$DOCKER_CGROUP"* /sys/fs/cgroup/"$DOCKER_CGROUP"*; do
		[ -d "$dir" ] || continue
		for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	sleep 0.2
	for dir in /sys/fs/cgroup/*/"$DOCKER_CGROUP"* /sys/fs/cgroup/"$DOCKER_CGROUP"*; do
		[ -d "$dir" ] || continue
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}
