package attach

import (
	"context"
	"net"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// OwnerAttach is the external_ids:ofctl-agent.owner value of ports Attach
// made; Detach and DetachAll touch no other port.
const OwnerAttach = "attach"

// Port is a port on the integration bridge: its name (= its interface's)
// and its interface's external_ids.
type Port struct {
	Name        string
	ExternalIDs map[string]string
}

// Ports is the OVS side: the ports of the integration bridge. The agent
// implements it over OVSDB.
type Ports interface {
	// AddPort adds a port with one system interface of the same name and
	// sets the interface's external_ids.
	AddPort(ctx context.Context, name string, externalIDs map[string]string) error
	// DeletePort removes a port; an absent port is not an error.
	DeletePort(ctx context.Context, name string) error
	// Ports lists the bridge's ports.
	Ports(ctx context.Context) ([]Port, error)
	// DatapathType is the bridge's datapath_type ("netdev": userspace).
	DatapathType(ctx context.Context) (string, error)
}

func (p Port) owner() string          { return p.ExternalIDs[endpoint.KeyOwner] }
func (p Port) containerID() string    { return p.ExternalIDs[endpoint.KeyContainerID] }
func (p Port) containerIface() string { return p.ExternalIDs[endpoint.KeyContainerIface] }
func (p Port) network() string        { return p.ExternalIDs[endpoint.KeyNetwork] }

// ip is the port's endpoint address, if it has a valid one.
func (p Port) ip() (netip.Addr, bool) {
	a, err := netip.ParseAddr(p.ExternalIDs[endpoint.KeyIP])
	return a, err == nil && a.Is4()
}

// mac is the port's endpoint MAC: explicit, or derived from its IP.
func (p Port) mac() (net.HardwareAddr, bool) {
	if s, ok := p.ExternalIDs[endpoint.KeyMAC]; ok {
		m, err := net.ParseMAC(s)
		return m, err == nil && len(m) == 6
	}
	ip, ok := p.ip()
	if !ok {
		return nil, false
	}
	return arp.DerivedMAC(ip), true
}

// externalIDs are the keys Attach writes on the interface.
func externalIDs(owner string, c Container, o Options) map[string]string {
	ext := map[string]string{
		endpoint.KeyNetwork:        o.Network,
		endpoint.KeyIP:             o.IP.Addr().String(),
		endpoint.KeyMAC:            o.mac().String(),
		endpoint.KeyOwner:          owner,
		endpoint.KeyContainerID:    c.ID,
		endpoint.KeyContainerIface: o.IfName,
	}
	if len(o.Ports) > 0 {
		ext[endpoint.KeyPorts] = endpoint.FormatPorts(o.Ports)
	}
	if o.Name != "" {
		ext[endpoint.KeyName] = o.Name
	}
	return ext
}
