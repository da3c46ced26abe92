package netfilter

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// A container reaches the outside (ping, an HTTP download) through its
// gateway, masqueraded: the outside sees only the host's uplink address.
// Forwarding is on for the gateway and the uplink only.
func TestOutboundMasquerade(t *testing.T) {
	b := newBed(t)
	file := make([]byte, 1<<20)
	_, _ = rand.Read(file)
	serveHTTP(t, b.outside, outsideIP+":8000", "outside", file)
	blue := b.ctrs["blue1"]
	if ok, _ := ping(blue.ns, outsideIP, 1); ok {
		t.Fatal("the container reached the outside before the rules: the test bed routes by itself")
	}
	k := b.keeper(t)
	apply(t, k, baseState())

	capt := startCapture(t, b.outside, "eth0", "ip")
	if ok, out := ping(blue.ns, outsideIP, 3); !ok {
		t.Fatalf("container -> outside ping failed:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "file")
	if out, err := curl(blue.ns, "http://"+outsideIP+":8000/file", "-o", dst); err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("downloaded %d bytes (err %v), want the 1 MiB served", len(got), err)
	}
	srcs := sources(capt.stop())
	if srcs[hostAddr] < 10 || len(srcs) != 2 || srcs[outsideIP] == 0 {
		t.Fatalf("sources seen outside: %v; want only %s (the host, masqueraded) and %s (the server)", srcs, hostAddr, outsideIP)
	}
	t.Logf("sources seen by tcpdump outside: %v", srcs)

	c, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	n := c.Networks[0]
	if n.Network != "blue" || n.Masqueraded < 2 || n.Egress.Packets < 10 || n.Ingress.Bytes < 1<<20 {
		t.Errorf("blue counters %+v: want >= 2 connections masqueraded (ping, http), the download in ingress", n)
	}
	if masq := b.ruleCounter(t, "postrouting", "masquerade blue"); masq != n.Masqueraded {
		t.Errorf("nft counts %d masqueraded connections, Counters %d", masq, n.Masqueraded)
	}
}

// IPv4 forwarding is per input interface: with net.ipv4.conf.all.forwarding
// at 0, the Keeper turns it on for the gateway ports and the uplink (the
// default route's interface) only, and that is enough; the gateway's own
// flag is what the kernel checks for the container's packets.
func TestForwardingPerInterface(t *testing.T) {
	b := newBed(t)
	b.host.MustExec(t, "ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1")
	k := b.keeper(t)
	apply(t, k, baseState())
	flag := func(ifname string) string {
		return strings.TrimSpace(b.host.MustExec(t, "sysctl", "-n", "net.ipv4.conf."+ifname+".forwarding"))
	}
	if u := k.Status().Uplinks; len(u) != 1 || u[0] != uplinkIf {
		t.Errorf("uplinks %v, want the default route's %s", u, uplinkIf)
	}
	want := map[string]string{"all": "0", "default": "0", "side0": "0", "gw-blue": "1", "gw-red": "1", uplinkIf: "1"}
	for ifname, v := range want {
		if got := flag(ifname); got != v {
			t.Errorf("net.ipv4.conf.%s.forwarding = %s, want %s", ifname, got, v)
		}
	}
	blue := b.ctrs["blue1"]
	if ok, out := ping(blue.ns, outsideIP, 2); !ok {
		t.Fatalf("with forwarding on the gateway and uplink only, container -> outside failed:\n%s", out)
	}
	// Turned off on the gateway alone: the host refuses to route the
	// container's packets; it counts them as address errors (and sends no
	// ICMP error when forwarding is off on the input interface).
	b.host.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.conf.gw-blue.forwarding=0")
	before := ipStat(t, b.host, "InAddrErrors")
	if ok, out := ping(blue.ns, outsideIP, 2); ok {
		t.Fatalf("with gw-blue's forwarding off, the container still reached the outside:\n%s", out)
	}
	if n := ipStat(t, b.host, "InAddrErrors") - before; n < 2 {
		t.Fatalf("with gw-blue's forwarding off, the host counted %d address errors for 2 pings", n)
	}
	// The next sync turns it on again.
	if _, err := k.Apply(baseState()); err != nil {
		t.Fatal(err)
	}
	if got := flag("gw-blue"); got != "1" {
		t.Fatalf("after a sync gw-blue's forwarding is %s", got)
	}
	if ok, out := ping(blue.ns, outsideIP, 2); !ok {
		t.Fatalf("after the sync, container -> outside failed:\n%s", out)
	}
	// The uplink's flag is what the replies need: off, the requests leave
	// and the replies are refused at the host.
	b.host.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.conf."+uplinkIf+".forwarding=0")
	before = ipStat(t, b.host, "InAddrErrors")
	if ok, out := ping(blue.ns, outsideIP, 2); ok {
		t.Fatalf("with the uplink's forwarding off, the container still got replies:\n%s", out)
	}
	if n := ipStat(t, b.host, "InAddrErrors") - before; n < 2 {
		t.Fatalf("with the uplink's forwarding off, the host counted %d address errors for 2 replies", n)
	}
}

// An error for an interface that does not exist yet is not an error: it is
// reported in Status and set when it appears.
func TestForwardingMissingInterface(t *testing.T) {
	b := newBed(t)
	k := b.keeper(t)
	late := Network{Name: "green", Subnet: netip.MustParsePrefix("10.50.0.0/16"), Gateway: "gw-green"}
	apply(t, k, State{Networks: []Network{blueNet, late}})
	if m := k.Status().ForwardingMissing; len(m) != 1 || m[0] != "gw-green" {
		t.Fatalf("ForwardingMissing = %v, want [gw-green]", m)
	}
	run(t, k)
	b.host.MustExec(t, "ip", "link", "add", "gw-green", "type", "veth", "peer", "name", "green-peer")
	took := waitFor(t, 5*time.Second, func() bool {
		out, _ := b.host.Exec("sysctl", "-n", "net.ipv4.conf.gw-green.forwarding")
		return strings.TrimSpace(out) == "1"
	}, "gw-green's forwarding never turned on")
	t.Logf("forwarding on for a new interface after %v", took)
}

// ipStat reads a counter of the Ip line of /proc/net/snmp in ns.
func ipStat(t *testing.T, ns testbed.NetNS, field string) uint64 {
	t.Helper()
	var names []string
	for _, line := range strings.Split(ns.MustExec(t, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == field && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Ip %s in /proc/net/snmp", field)
	return 0
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// The table the Keeper writes is, in nft's own words, the golden text of
// its Ruleset: the renderer and the kernel agree.
func TestKernelMatchesRendering(t *testing.T) {
	b := newBed(t)
	k := b.keeper(t)
	refused, err := k.Apply(referenceState())
	if err != nil || len(refused) != len(referenceRefusals) {
		t.Fatalf("Apply: refused %v, err %v", refused, err)
	}
	got := b.nft(t, "list", "table", "ip", DefaultTable)
	if want := k.Ruleset().String(); squash(got) != squash(want) {
		t.Fatalf("nft list table:\n%s\nwant (Ruleset.String):\n%s", got, want)
	}
}

// squash makes white space runs one space (nft wraps long element lists).
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
