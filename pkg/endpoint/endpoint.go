package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
)

// Endpoint is a local container interface on the integration bridge.
type Endpoint struct {
	Port           string // OVS port/interface name (the host end of the veth)
	OFPort         uint32
	Network        string
	IP             netip.Addr
	MAC            net.HardwareAddr // the container side's MAC
	ContainerID    string
	ContainerIface string
	Name           string      // its DNS name (KeyName), "" for none
	Ports          []Published // host ports it publishes (KeyPorts)
	// Gateway: the port says it is a gateway (KeyRole); the agent checks
	// that it is one of its own before treating it as one.
	Gateway bool
}

// ErrNotEndpoint means the interface carries no ofctl-agent keys: it is not
// ours to program, and that is not an error worth reporting.
var ErrNotEndpoint = errors.New("not an endpoint")

// ErrNoOFPort means the interface is an endpoint whose ofport OVS has not
// assigned (yet, or ever: ofport -1 means OVS could not open it).
var ErrNoOFPort = errors.New("no ofport assigned")

// InvalidError reports an external_ids value that cannot be used.
type InvalidError struct {
	Port, Key, Value, Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("interface %s: external_ids:%s=%q: %s", e.Port, e.Key, e.Value, e.Reason)
}

// FromInterface turns an Interface row's name, ofport and external_ids into a
// validated endpoint. It returns ErrNotEndpoint when the network key is
// absent, ErrNoOFPort (wrapped) while the port has no usable ofport, and an
// *InvalidError for a malformed value.
func FromInterface(name string, ofport int, ext map[string]string) (Endpoint, error) {
	network, ok := ext[KeyNetwork]
	if !ok {
		return Endpoint{}, ErrNotEndpoint
	}
	ep := Endpoint{Port: name, Network: network, ContainerID: ext[KeyContainerID], ContainerIface: ext[KeyContainerIface]}
	if network == "" {
		return ep, &InvalidError{name, KeyNetwork, network, "empty network name"}
	}
	ipText, ok := ext[KeyIP]
	if !ok {
		return ep, &InvalidError{name, KeyIP, "", "missing"}
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return ep, &InvalidError{name, KeyIP, ipText, "not a unicast IPv4 address"}
	}
	ep.IP = ip
	if macText, ok := ext[KeyMAC]; ok {
		mac, err := net.ParseMAC(macText)
		if err != nil || len(mac) != 6 || mac[0]&1 == 1 || isZero(mac) {
			return ep, &InvalidError{name, KeyMAC, macText, "not a unicast Ethernet MAC"}
		}
		ep.MAC = mac
	} else {
		ep.MAC = arp.DerivedMAC(ip) // what remote hosts in static mode expect
	}
	if dnsName, ok := ext[KeyName]; ok {
		if err := ValidateName(dnsName); err != nil {
			return ep, &InvalidError{name, KeyName, dnsName, err.Error()}
		}
		ep.Name = dnsName
	}
	ports, err := ParsePorts(ext[KeyPorts])
	if err != nil {
		return ep, &InvalidError{name, KeyPorts, ext[KeyPorts], err.Error()}
	}
	ep.Ports = ports
	switch role := ext[KeyRole]; role {
	case "":
	case RoleGateway:
		ep.Gateway = true
	default:
		return ep, &InvalidError{name, KeyRole, role, `want "gateway" or no key`}
	}
	if ofport <= 0 || ofport >= 0xff00 {
		return ep, fmt.Errorf("interface %s: %w (ofport %d)", name, ErrNoOFPort, ofport)
	}
	ep.OFPort = uint32(ofport)
	return ep, nil
}

func isZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
