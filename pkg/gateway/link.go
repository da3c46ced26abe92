package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNoLink means the gateway port's interface is not in the host's
// namespace (yet: ovs-vswitchd creates it once the port is in OVSDB).
var ErrNoLink = errors.New("interface not found")

// NetlinkLinks keeps gateway interfaces with netlink in one network
// namespace: the host's, where ovs-vswitchd creates its internal ports.
type NetlinkLinks struct{ h *netlink.Handle }

// NewNetlinkLinks opens a netlink handle in the namespace at path ("": the
// caller's).
func NewNetlinkLinks(path string) (*NetlinkLinks, error) {
	if path == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		return &NetlinkLinks{h}, nil
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return &NetlinkLinks{h}, nil
}

// Close releases the handle.
func (l *NetlinkLinks) Close() { l.h.Close() }

// Ensure gives g's interface its MAC, address (and no other IPv4
// address) and sets it up; its MTU is OVS's to set (PortSpec). It returns what it changed ("" for nothing).
func (l *NetlinkLinks) Ensure(g Gateway, mtu int) ([]string, error) {
	link, err := l.h.LinkByName(g.Port)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%s: %w", g.Port, ErrNoLink)
		}
		return nil, fmt.Errorf("%s: %w", g.Port, err)
	}
	var did []string
	attrs := link.Attrs()
	if !bytes.Equal(attrs.HardwareAddr, g.MAC) {
		if err := l.h.LinkSetHardwareAddr(link, g.MAC); err != nil {
			return did, fmt.Errorf("%s: set mac %s: %w", g.Port, g.MAC, err)
		}
		did = append(did, "mac "+g.MAC.String())
	}
	_ = mtu // ovs-vswitchd sets it from the port's mtu_request (Keeper, PortSpec)
	addrs, err := l.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return did, fmt.Errorf("%s: list addresses: %w", g.Port, err)
	}
	have := false
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if a.IP.Equal(net.IP(g.IP().AsSlice())) && ones == g.Addr.Bits() && a.Flags&unix.IFA_F_NOPREFIXROUTE != 0 {
			have = true
			continue
		}
		if err := l.h.AddrDel(link, &a); err != nil {
			return did, fmt.Errorf("%s: remove address %s: %w", g.Port, a.IPNet, err)
		}
		did = append(did, "removed "+a.IPNet.String())
	}
	if !have {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: g.IP().AsSlice(), Mask: net.CIDRMask(g.Addr.Bits(), 32)}, Flags: unix.IFA_F_NOPREFIXROUTE}
		if err := l.h.AddrAdd(link, a); err != nil {
			return did, fmt.Errorf("%s: add address %s: %w", g.Port, g.Addr, err)
		}
		did = append(did, "address "+g.Addr.String())
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := l.h.LinkSetUp(link); err != nil {
			return did, fmt.Errorf("%s: set up: %w", g.Port, err)
		}
		did = append(did, "up")
	}
	more, err := l.ensureRoute(g, link)
	return append(did, more...), err
}

// RouteTable is the routing table holding the routes to the gateways'
// networks, and RulePriority the priority of the rules that send the
// networks' addresses there ("ip rule": to 10.100.0.0/16 lookup 28519).
// The routes stay out of the main table because Docker 20.10 checks a
// network's pool against the main table's routes and, when the pool
// overlaps one, asks its IPAM driver for another one forever: a gateway's
// connected route there would hang `docker network create` on the
// ofctl-agent driver.
const (
	RouteTable   = 28519 // "og"
	RulePriority = 28519 // before main (32766)
)

func (g Gateway) subnet() *net.IPNet {
	p := g.Addr.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// ensureRoute keeps the route to g's network through its port in
// RouteTable and the rule that looks the network up there.
func (l *NetlinkLinks) ensureRoute(g Gateway, link netlink.Link) ([]string, error) {
	var did []string
	dst := g.subnet()
	want := netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Src: g.IP().AsSlice(), Scope: netlink.SCOPE_LINK,
		Table: RouteTable, Protocol: unix.RTPROT_STATIC}
	routes, err := l.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: RouteTable, LinkIndex: want.LinkIndex},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	if err != nil {
		return did, fmt.Errorf("%s: list routes: %w", g.Port, err)
	}
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return r.Dst != nil && r.Dst.String() == dst.String() && r.Src.Equal(want.Src)
	}) {
		if err := l.h.RouteReplace(&want); err != nil {
			return did, fmt.Errorf("%s: route %s table %d: %w", g.Port, dst, RouteTable, err)
		}
		did = append(did, fmt.Sprintf("route %s table %d", dst, RouteTable))
	}
	rules, err := l.rules()
	if err != nil {
		return did, err
	}
	if !slices.ContainsFunc(rules, func(r netlink.Rule) bool { return r.Dst.String() == dst.String() }) {
		r := netlink.NewRule()
		r.Family, r.Dst, r.Table, r.Priority = netlink.FAMILY_V4, dst, RouteTable, RulePriority
		if err := l.h.RuleAdd(r); err != nil {
			return did, fmt.Errorf("rule to %s lookup %d: %w", dst, RouteTable, err)
		}
		did = append(did, fmt.Sprintf("rule to %s lookup %d", dst, RouteTable))
	}
	return did, nil
}

// rules are the rules of RulePriority looking RouteTable up (the agent's).
func (l *NetlinkLinks) rules() ([]netlink.Rule, error) {
	all, err := l.h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	var out []netlink.Rule
	for _, r := range all {
		if r.Table == RouteTable && r.Priority == RulePriority && r.Dst != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// Prune removes the agent's rules for networks no gateway of gws serves
// (their routes went with their ports' interfaces).
func (l *NetlinkLinks) Prune(gws []Gateway) ([]string, error) {
	rules, err := l.rules()
	if err != nil {
		return nil, err
	}
	var did []string
	for _, r := range rules {
		if slices.ContainsFunc(gws, func(g Gateway) bool { return g.subnet().String() == r.Dst.String() }) {
			continue
		}
		if err := l.h.RuleDel(&r); err != nil {
			return did, fmt.Errorf("remove rule to %s: %w", r.Dst, err)
		}
		did = append(did, fmt.Sprintf("removed rule to %s", r.Dst))
	}
	return did, nil
}

// MTU is the MTU of the interface holding ip in the namespace (the
// underlay interface when ip is the tunnel address).
func (l *NetlinkLinks) MTU(ip net.IP) (int, string, error) {
	addrs, err := l.h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return 0, "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if !a.IP.Equal(ip) {
			continue
		}
		link, err := l.h.LinkByIndex(a.LinkIndex)
		if err != nil {
			return 0, "", fmt.Errorf("interface of %s: %w", ip, err)
		}
		return link.Attrs().MTU, link.Attrs().Name, nil
	}
	return 0, "", fmt.Errorf("no interface holds %s", ip)
}
