package testbed

import (
	"net/netip"
	"testing"
)

// PhyBridge is the bridge that holds a node's underlay interface and IP.
const PhyBridge = "br-phy"

// Underlay joins two nodes with a veth pair, puts each end on a br-phy bridge
// (userspace, NORMAL switching) and gives br-phy the node's underlay address,
// so OVS userspace tunnelling (GRE) can route between the nodes. Calling it
// again with the same node a and address joins one more node through a's
// br-phy (a star: a switches between the others; never make a loop).
func Underlay(t testing.TB, a, b *Node, aIP, bIP netip.Prefix) {
	t.Helper()
	aIf, bIf := "ul-"+b.Name, "ul-"+a.Name
	if len(aIf) > 15 || len(bIf) > 15 {
		t.Fatalf("node names too long for underlay interface names: %q %q", aIf, bIf)
	}
	a.Exec(t, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", string(b.NS))
	a.addPhy(t, aIf, aIP)
	b.addPhy(t, bIf, bIP)
}

func (n *Node) addPhy(t testing.TB, ifname string, ip netip.Prefix) {
	t.Helper()
	n.Exec(t, "ip", "link", "set", ifname, "up")
	n.Vsctl(t, "--may-exist", "add-br", PhyBridge, "--", "set", "bridge", PhyBridge,
		"datapath_type=netdev", "other_config:hwaddr="+n.hwaddr(PhyBridge).String())
	n.Vsctl(t, "add-port", PhyBridge, ifname)
	n.Exec(t, "ip", "addr", "replace", ip.String(), "dev", PhyBridge) // idempotent: a star hub is set up once per spoke
	n.Exec(t, "ip", "link", "set", PhyBridge, "up")
}
