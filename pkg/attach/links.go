package attach

import (
	"errors"
	"net"
	"net/netip"
)

// ErrLinkNotFound means no interface of that name exists in the namespace.
var ErrLinkNotFound = errors.New("link not found")

// LinkConfig is the container end as AddVeth creates it and Configure
// makes it.
type LinkConfig struct {
	Name string // its name (Configure renames to it)
	MAC  net.HardwareAddr
	MTU  int
	Addr netip.Prefix
}

// LinkState is what Inspect observes.
type LinkState struct {
	Kind    string // "veth", ...
	MAC     net.HardwareAddr
	MTU     int
	Up      bool
	Addrs   []netip.Prefix // IPv4
	Gateway netip.Addr     // IPv4 default route via this link, if any
}

// Links is the kernel side of attaching (netlink, and the ethtool ioctl
// for offloads), every call naming an open namespace (nil is the caller's
// own). Netlink implements it.
type Links interface {
	// Inspect returns ErrLinkNotFound (wrapped) when name does not exist.
	Inspect(ns *NetNS, name string) (LinkState, error)
	// AddVeth creates a veth pair: end name in ns, and end peer.Name in
	// namespace peerNS with peer.MAC, both with peer.MTU. Made in its
	// namespace, the container end never has to move (moving a link to
	// another namespace costs the kernel ~20 ms; creating it there, ~2).
	AddVeth(ns *NetNS, name string, peerNS *NetNS, peer LinkConfig) error
	// DeleteVeth deletes a veth (and so its peer); ErrLinkNotFound when absent.
	DeleteVeth(ns *NetNS, name string) error
	// Configure renames the link, sets MAC, MTU and address (each only
	// when it differs), and brings it up.
	Configure(ns *NetNS, name string, cfg LinkConfig) error
	// SetUp brings a link up.
	SetUp(ns *NetNS, name string) error
	// AddDefaultRoute adds a default route via gw on the link.
	AddDefaultRoute(ns *NetNS, name string, gw netip.Addr) error
	// TxChecksum reports whether TX checksum offload is on (ethtool -k's
	// tx-checksumming); ErrLinkNotFound when name does not exist.
	TxChecksum(ns *NetNS, name string) (bool, error)
	// SetTxChecksum turns TX checksum offload on or off (ethtool -K tx).
	SetTxChecksum(ns *NetNS, name string, on bool) error
}
