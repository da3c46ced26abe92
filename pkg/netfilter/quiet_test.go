package netfilter

import (
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestQuietPorts: the host stops answering ARP for its addresses on the
// given interfaces (arp_ignore 8), once; a missing interface is skipped;
// the other end of the veth, the observer (its neighbour table), gets no answer
// after, one before.
func TestQuietPorts(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "ip", "ping", "sysctl")
	host, ctr := testbed.NewNetNS(t, "qhost"), testbed.NewNetNS(t, "qctr")
	host.MustExec(t, "ip", "link", "add", "vh0", "type", "veth", "peer", "name", "eth0", "netns", string(ctr))
	host.MustExec(t, "ip", "link", "set", "vh0", "up")
	host.MustExec(t, "ip", "addr", "add", "10.100.1.1/32", "dev", "lo") // a local address on another interface, as the gateway's
	ctr.MustExec(t, "ip", "addr", "add", "10.100.1.10/16", "dev", "eth0")
	ctr.MustExec(t, "ip", "link", "set", "eth0", "up")
	// arping's stand-in: a ping makes the container ask for the address;
	// its neighbour table says whether anyone answered.
	arping := func() bool {
		ctr.MustExec(t, "ip", "neigh", "flush", "dev", "eth0")
		_, _ = ctr.Exec("ping", "-c", "1", "-W", "1", "10.100.1.1")
		return strings.Contains(ctr.MustExec(t, "ip", "neigh", "show", "10.100.1.1"), "lladdr")
	}
	if !arping() {
		t.Fatal("before: the host does not answer ARP for its gateway address on the veth (the probe did not work)")
	}
	changed, err := QuietPorts(host.Path(), []string{"vh0", "gone0"})
	if err != nil || !slices.Equal(changed, []string{"vh0"}) {
		t.Fatalf("QuietPorts: %v, %v; want [vh0]", changed, err)
	}
	if got := strings.TrimSpace(host.MustExec(t, "sysctl", "-n", "net.ipv4.conf.vh0.arp_ignore")); got != "8" {
		t.Fatalf("arp_ignore %s, want 8", got)
	}
	if arping() {
		t.Fatal("after: the host still answers ARP on the veth")
	}
	if changed, err := QuietPorts(host.Path(), []string{"vh0"}); err != nil || len(changed) != 0 {
		t.Fatalf("again: %v, %v; want nothing changed", changed, err)
	}
}
