package testbed

import (
	"net/netip"
	"testing"
)

// Outside is "the rest of the world" of a node: a namespace behind the
// node's uplink, in TEST-NET-2. The node routes everything it does not
// know there (its default route); the outside knows nothing but the
// uplink's subnet, so it reaches a container only when the node translates.
//
//	[node] up0 198.51.100.1/24 --veth-- eth0 198.51.100.2/24 [outside]
type Outside struct {
	NS       NetNS
	Uplink   string     // the node's end, "up0"
	HostAddr netip.Addr // the node's address on it: what masquerading shows
	Addr     netip.Addr // the outside's address
}

// The addresses of Outside (TEST-NET-2, RFC 5737).
var (
	OutsideHostAddr = netip.MustParseAddr("198.51.100.1")
	OutsideAddr     = netip.MustParseAddr("198.51.100.2")
)

// AddOutside gives node n an uplink to a new outside namespace and a
// default route through it. IPv4 forwarding of the node is left as it is
// (off in a new namespace): the agent turns it on where it needs it.
func AddOutside(t testing.TB, n *Node) *Outside {
	t.Helper()
	o := &Outside{NS: newNetNS(t, n.Name+"-out"), Uplink: "up0", HostAddr: OutsideHostAddr, Addr: OutsideAddr}
	n.Exec(t, "ip", "link", "add", o.Uplink, "type", "veth", "peer", "name", "eth0", "netns", string(o.NS))
	n.Exec(t, "ip", "addr", "add", o.HostAddr.String()+"/24", "dev", o.Uplink)
	n.Exec(t, "ip", "link", "set", o.Uplink, "up")
	o.NS.MustExec(t, "ip", "addr", "add", o.Addr.String()+"/24", "dev", "eth0")
	o.NS.MustExec(t, "ip", "link", "set", "eth0", "up")
	n.Exec(t, "ip", "route", "add", "default", "via", o.Addr.String())
	return o
}
