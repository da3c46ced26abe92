package pipeline

import (
	"net"
	"net/netip"
)

// State is the desired state of one host's bridge.
type State struct {
	// TunnelPort is the ofport of the flow-based GRE port; 0 when the host
	// has no tunnel (then no tunnel flows are installed).
	TunnelPort      uint32
	Networks        []Network
	Endpoints       []Endpoint // local
	Hosts           []RemoteHost
	RemoteEndpoints []RemoteEndpoint // known individually in etcd mode
}

// Network is an isolated layer-2 segment.
type Network struct {
	Name   string
	VNI    uint32 // 1..2^24-1; carried in reg0 and as the GRE key
	Subnet netip.Prefix
}

// Endpoint is a container interface on this host's bridge.
type Endpoint struct {
	Network string
	Port    string // OVS port name: the endpoint's identity
	OFPort  uint32
	MAC     net.HardwareAddr // any unicast MAC (attach derives 0a:58:<ip> by default)
	IP      netip.Addr
	// Gateway: the host's gateway port of the network (pkg/gateway), an
	// endpoint whose spoof guard admits any source IP (it forwards the
	// outside world's packets) but only its own MAC.
	Gateway bool
}

// RemoteHost is another host, reached through the tunnel.
type RemoteHost struct {
	Name     string
	TunnelIP netip.Addr              // underlay IPv4 address
	Ranges   map[string]netip.Prefix // network name -> the part of its subnet this host's endpoints use
}

// RemoteEndpoint is an endpoint on another host with a known MAC (etcd mode).
type RemoteEndpoint struct {
	Network string
	IP      netip.Addr
	MAC     net.HardwareAddr
	Host    string
}

// Cookie is the cookie of the endpoint's flows (identity: its port name).
func (e Endpoint) Cookie() uint64 {
	return Cookie(CategoryLocalEndpoint, ObjectID("endpoint/"+e.Port))
}

// Cookie is the cookie of the host's flows (identity: its name).
func (h RemoteHost) Cookie() uint64 { return Cookie(CategoryRemoteHost, ObjectID("host/"+h.Name)) }

// Cookie is the cookie of the remote endpoint's flows (identity: network and IP).
func (e RemoteEndpoint) Cookie() uint64 {
	return Cookie(CategoryRemoteEndpoint, ObjectID("remote-endpoint/"+e.Network+"/"+e.IP.String()))
}

// Cookie is the cookie of the network's flows (identity: its name).
func (n Network) Cookie() uint64 { return Cookie(CategoryNetwork, ObjectID("network/"+n.Name)) }

// FixedCookie is the cookie of the flows that belong to no object.
func FixedCookie() uint64 { return Cookie(CategoryFixed, 0) }

// MaxVNI is the largest VNI (24 bits, valid for VXLAN and Geneve too).
const MaxVNI = 1<<24 - 1

// maxOFPort is the largest ordinary OpenFlow port number.
const maxOFPort = 0xfffffeff
