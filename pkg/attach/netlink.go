package attach

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ofctl-agent/ofctl-agent/pkg/netnsrun"
)

// Netlink implements Links with github.com/vishvananda/netlink. Each call
// opens a rtnetlink socket inside the namespace through its descriptor
// (created on a throw-away locked thread, see inNetNS) and closes it again.
type Netlink struct{}

var _ Links = Netlink{}

// Inspect implements Links.
func (Netlink) Inspect(ns *NetNS, name string) (LinkState, error) {
	var st LinkState
	err := withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		a := l.Attrs()
		st = LinkState{Kind: l.Type(), MAC: a.HardwareAddr, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		for _, ad := range addrs {
			if p, ok := prefixOf(ad.IPNet); ok {
				st.Addrs = append(st.Addrs, p)
			}
		}
		routes, err := retryDump(func() ([]netlink.Route, error) { return h.RouteList(l, netlink.FAMILY_V4) })
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if isDefault(r.Dst) && r.Gw != nil {
				st.Gateway, _ = netip.AddrFromSlice(r.Gw.To4())
			}
		}
		return nil
	})
	return st, err
}

// AddVeth implements Links: one request, made in ns, names peerNS for the
// peer (IFLA_NET_NS_FD).
func (Netlink) AddVeth(ns *NetNS, name string, peerNS *NetNS, peer LinkConfig) error {
	if peerNS.fd() < 0 {
		return fmt.Errorf("create veth %s/%s: no namespace for %s", name, peer.Name, peer.Name)
	}
	return withHandle(ns, func(h *netlink.Handle) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: peer.MTU}, PeerName: peer.Name,
			PeerMTU: uint32(peer.MTU), PeerHardwareAddr: peer.MAC, PeerNamespace: netlink.NsFd(peerNS.fd())}
		if err := h.LinkAdd(v); err != nil {
			return fmt.Errorf("create veth %s/%s in %s: %w", name, peer.Name, peerNS, err)
		}
		return nil
	})
}

// DeleteVeth implements Links. It refuses to delete anything but a veth.
func (Netlink) DeleteVeth(ns *NetNS, name string) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		if l.Type() != "veth" {
			return fmt.Errorf("%s is a %s, not a veth: not deleting it", name, l.Type())
		}
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		return nil
	})
}

// Configure implements Links.
func (Netlink) Configure(ns *NetNS, name string, cfg LinkConfig) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		a := l.Attrs()
		steps := []struct {
			what string
			skip bool // already so
			do   func() error
		}{
			{"rename to " + cfg.Name, a.Name == cfg.Name, func() error { return h.LinkSetName(l, cfg.Name) }},
			{"set mac " + cfg.MAC.String(), a.HardwareAddr.String() == cfg.MAC.String(), func() error { return h.LinkSetHardwareAddr(l, cfg.MAC) }},
			{fmt.Sprint("set mtu ", cfg.MTU), a.MTU == cfg.MTU, func() error { return h.LinkSetMTU(l, cfg.MTU) }},
			{"add address " + cfg.Addr.String(), false, func() error { return h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(cfg.Addr)}) }},
			{"set up", false, func() error { return h.LinkSetUp(l) }},
		}
		for _, s := range steps {
			if s.skip {
				continue
			}
			if err := s.do(); err != nil {
				return fmt.Errorf("%s: %s: %w", name, s.what, err)
			}
		}
		return nil
	})
}

// SetUp implements Links.
func (Netlink) SetUp(ns *NetNS, name string) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		return nil
	})
}

// AddDefaultRoute implements Links.
func (Netlink) AddDefaultRoute(ns *NetNS, name string, gw netip.Addr) error {
	return withLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice()), Dst: ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %s dev %s: %w", gw, name, err)
		}
		return nil
	})
}

// withLink runs fn with a handle in ns and the link called name.
func withLink(ns *NetNS, name string, fn func(*netlink.Handle, netlink.Link) error) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return fmt.Errorf("%s: %w", name, ErrLinkNotFound)
			}
			return fmt.Errorf("look up %s: %w", name, err)
		}
		return fn(h, l)
	})
}

// withHandle opens an rtnetlink handle in namespace ns (nil is the
// current one) and runs fn with it. Only the socket is created inside the
// namespace; fn runs on the caller's thread.
func withHandle(ns *NetNS, fn func(*netlink.Handle) error) error {
	var h *netlink.Handle
	err := inNamespace(ns, func() (err error) { h, err = netlink.NewHandle(unix.NETLINK_ROUTE); return err })
	if err != nil {
		return fmt.Errorf("netlink socket in %s: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

// inNamespace runs fn in namespace ns, or directly for nil (the current
// one).
func inNamespace(ns *NetNS, fn func() error) error {
	if ns == nil {
		return fn()
	}
	if ns.fd() < 0 {
		return fmt.Errorf("network namespace %s is not open", ns)
	}
	return netnsrun.Handle(netns.NsHandle(ns.fd()), fn)
}

// retryDump repeats a netlink dump the kernel interrupted (a concurrent
// change); the partial answer is never used.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, err
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	ones, bits := n.Mask.Size()
	if !ok || bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0 && dst.IP.IsUnspecified()
}
