package attach

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// ethtoolTx is what ethtool itself says about name's tx-checksumming in
// namespace ns: the independent observer of the ioctl.
func ethtoolTx(t *testing.T, ns, name string) string {
	t.Helper()
	for _, l := range strings.Split(mustCmd(t, "ip", "netns", "exec", ns, "ethtool", "-k", name), "\n") {
		if v, ok := strings.CutPrefix(l, "tx-checksumming: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("ethtool -k %s in %s: no tx-checksumming line", name, ns)
	return ""
}

// TestIntegrationTxChecksum drives the SIOCETHTOOL plumbing against the
// kernel inside a namespace and checks it with ethtool.
func TestIntegrationTxChecksum(t *testing.T) {
	testbed.Require(t)
	checkThreads(t)
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Fatal("ethtool is needed as the observer: apt-get install ethtool")
	}
	c := newCtr(t, "tx")
	ns, nl := nsOf(c), Netlink{}
	mustCmd(t, "ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	if on, err := nl.TxChecksum(c.NetNS, "va"); err != nil || !on || ethtoolTx(t, ns, "va") != "on" {
		t.Fatalf("a new veth: on=%v, %v; ethtool says %s", on, err, ethtoolTx(t, ns, "va"))
	}
	for _, on := range []bool{false, false, true} {
		if err := nl.SetTxChecksum(c.NetNS, "va", on); err != nil {
			t.Fatal(err)
		}
		got, err := nl.TxChecksum(c.NetNS, "va")
		if want := onOff(on); err != nil || got != on || ethtoolTx(t, ns, "va") != want {
			t.Errorf("set %s: reads %v, %v; ethtool says %s", want, got, err, ethtoolTx(t, ns, "va"))
		}
	}
	if got := ethtoolTx(t, ns, "vb"); got != "on" {
		t.Errorf("the peer changed too: %s", got)
	}
}

// TestIntegrationTxChecksumErrors: every way the ioctl plumbing can fail is
// an error saying which, never a panic.
func TestIntegrationTxChecksumErrors(t *testing.T) {
	testbed.Require(t)
	checkThreads(t)
	c, nl := newCtr(t, "txerr"), Netlink{}
	if _, err := nl.TxChecksum(c.NetNS, "nosuch0"); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("missing interface: %v, want ErrLinkNotFound", err)
	}
	if err := nl.SetTxChecksum(c.NetNS, "nosuch0", false); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("missing interface: %v, want ErrLinkNotFound", err)
	}
	if err := nl.SetTxChecksum(&NetNS{path: "/nonexistent/netns"}, "eth1", false); err == nil || !strings.Contains(err.Error(), "/nonexistent/netns") {
		t.Errorf("missing namespace: %v", err)
	}
	if _, err := nl.TxChecksum(c.NetNS, "a234567890123456"); err == nil || !strings.Contains(err.Error(), "want 1..15 bytes") {
		t.Errorf("name too long: %v", err)
	}
	// The loopback's checksum features are fixed: the kernel refuses, or
	// accepts and keeps them on; either way the caller hears of it.
	if err := nl.SetTxChecksum(c.NetNS, "lo", false); err == nil || !strings.Contains(err.Error(), "offload of lo ") {
		t.Errorf("lo: %v, want an error", err)
	}
	if got := ethtoolTx(t, nsOf(c), "lo"); got != "on" {
		t.Errorf("lo: ethtool says %s", got)
	}
}
