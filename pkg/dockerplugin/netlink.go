package dockerplugin

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
)

// NetlinkLinks implements Links with rtnetlink in one network namespace:
// dockerd's, which must also be ovs-vswitchd's (it opens the host ends):
// the host's stack (the agent's --netns-host).
type NetlinkLinks struct {
	ns     *attach.NetNS  // nil: the agent's own namespace
	handle netns.NsHandle // ns's descriptor for netlink.NewHandleAt; -1: own
}

// OpenNetlinkLinks opens dockerd's network namespace at path ("" is the
// agent's own: the usual case, both run in the host's namespace). Close it
// when done.
func OpenNetlinkLinks(path string) (*NetlinkLinks, error) {
	if path == "" {
		return &NetlinkLinks{handle: -1}, nil
	}
	ns, err := attach.OpenNetNS(path)
	if err != nil {
		return nil, fmt.Errorf("docker plugin: dockerd's %w", err)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("docker plugin: dockerd's network namespace %s: %w", path, err)
	}
	return &NetlinkLinks{ns: ns, handle: h}, nil
}

// Close releases the namespace.
func (l *NetlinkLinks) Close() error {
	if l.handle >= 0 {
		_ = l.handle.Close()
	}
	return l.ns.Close()
}

func (l *NetlinkLinks) withHandle(fn func(*netlink.Handle) error) error {
	var h *netlink.Handle
	var err error
	if l.handle >= 0 {
		h, err = netlink.NewHandleAt(l.handle)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return fmt.Errorf("netlink socket in %s: %w", l.ns, err)
	}
	defer h.Close()
	return fn(h)
}

// AddVeth implements Links.
func (l *NetlinkLinks) AddVeth(host, peer string, mac []byte, mtu int, txOff bool) error {
	err := l.withHandle(func(h *netlink.Handle) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MTU: mtu}, PeerName: peer,
			PeerMTU: uint32(mtu), PeerHardwareAddr: net.HardwareAddr(mac)}
		if err := h.LinkAdd(v); err != nil {
			return fmt.Errorf("create veth %s/%s: %w", host, peer, err)
		}
		return nil
	})
	if err != nil || !txOff {
		return err
	}
	return attach.Netlink{}.SetTxChecksum(l.ns, peer, false)
}

// SetUp implements Links.
func (l *NetlinkLinks) SetUp(name string) error {
	return l.withHandle(func(h *netlink.Handle) error {
		lk, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		if err := h.LinkSetUp(lk); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		return nil
	})
}

// DeleteVeth implements Links; it deletes nothing but a veth.
func (l *NetlinkLinks) DeleteVeth(name string) error {
	return l.withHandle(func(h *netlink.Handle) error {
		lk, err := h.LinkByName(name)
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf):
			return nil
		case err != nil:
			return fmt.Errorf("look up %s: %w", name, err)
		case lk.Type() != "veth":
			return fmt.Errorf("%s is a %s, not a veth: not deleting it", name, lk.Type())
		}
		if err := h.LinkDel(lk); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		return nil
	})
}

// Exists implements Links.
func (l *NetlinkLinks) Exists(name string) (bool, error) {
	var there bool
	err := l.withHandle(func(h *netlink.Handle) error {
		_, err := h.LinkByName(name)
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf):
			return nil
		case err != nil:
			return fmt.Errorf("look up %s: %w", name, err)
		}
		there = true
		return nil
	})
	return there, err
}
