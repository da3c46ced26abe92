package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
		if a.IP.Equal(net.IP(g.IP().AsSlice())) && ones == g.Addr.Bits() {
			have = true
			continue
		}
		if err := l.h.AddrDel(link, &a); err != nil {
			return did, fmt.Errorf("%s: remove address %s: %w", g.Port, a.IPNet, err)
		}
		did = append(did, "removed "+a.IPNet.String())
	}
	if !have {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: g.IP().AsSlice(), Mask: net.CIDRMask(g.Addr.Bits(), 32)}}
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
