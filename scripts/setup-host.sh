#!/usr/bin/env bash
# Installs what the tests and the demo need, from Debian's packages, when it is
# missing and we run as root. Idempotent: does nothing on a machine that is ready.
set -euo pipefail
need=()
command -v ovs-vswitchd >/dev/null 2>&1 || need+=(openvswitch-switch)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
# curl: the demo asks the agents for /readyz and /metrics.
command -v curl >/dev/null 2>&1 || need+=(curl)
# iperf3: TCP throughput through the datapath (bench/datapath_test.go).
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
# ethtool: TCP through the userspace datapath needs TX checksum offload off on veths (same benchmark).
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
# nft and iptables: observers of the gateway's packet filter in pkg/netfilter's tests (nft list,
# nft monitor), and Docker's FORWARD DROP reproduced with the iptables CLI.
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# etcdctl: the etcd roles of docs/etcd.md are set up by running its commands (pkg/cluster/etcd/roles_test.go).
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
# promtool (checks the agent's /metrics output in tests) ships in Debian's prometheus package.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# dockerd (Debian's docker.io, 20.10: API 1.41, containerd and runc as dependencies) and a static
# busybox for the test image: the Docker plugin's tests start one private dockerd per test host.
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
# dig and nslookup: independent observers of the resolver (pkg/resolver integration tests).
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
# dnsmasq: the "outside" upstream in the resolver tests and the reference in its benchmark.
# dnsmasq-base is the binary alone: the dnsmasq package would start a system service on port 53.
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
# dnsperf: the resolver benchmark's load generator.
command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
# the reference CNI plugins (host-local, bridge) in /usr/lib/cni: ofctl-cni's tests delegate IPAM to
# host-local, and its benchmark runs bridge beside it.
[ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: missing ${need[*]}; run as root to install them (apt-get install ${need[*]})" >&2
  exit 0
fi
echo "setup-host: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The packages must not start their system services (docker.io would start dockerd and
# containerd on the host): a policy-rc.d that refuses starts, for the time of the install,
# unless the machine has one already (container images often do).
policy=/usr/sbin/policy-rc.d
ours=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  trap '[ -n "$ours" ] && rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Nor at the next boot: the tests run private engines (test/testbed/docker.go).
if [[ " ${need[*]} " == *" docker.io "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
fi
# The package may start the system OVS service; the tests run private
# instances and do not need it.
