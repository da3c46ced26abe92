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
# promtool (checks the agent's /metrics output in tests) ships in Debian's prometheus package.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: missing ${need[*]}; run as root to install them (apt-get install ${need[*]})" >&2
  exit 0
fi
echo "setup-host: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package may start the system OVS service; the tests run private
# instances and do not need it.
