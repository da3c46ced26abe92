package attach

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// Defaults for Options.
const (
	DefaultIfName = "eth1"
	// DefaultMTU leaves room for GRE over a 1500-byte underlay: outer IPv4
	// (20) + GRE with key (8) + inner Ethernet (14) = 42 bytes, rounded up to
	// 50 as in the common VXLAN/GRE overlay setups.
	DefaultMTU = 1450
	minMTU     = 68    // the smallest MTU IPv4 allows (RFC 791)
	maxMTU     = 65535 // the largest a veth accepts
)

// Options are the settings of one container interface (ovs-docker's
// --ipaddress, --gateway, --macaddress and --mtu, plus the network name).
type Options struct {
	Network string       // network name from the cluster view (required)
	Subnet  netip.Prefix // the network's CIDR; when valid, IP must lie inside it, with its prefix length
	IfName  string       // interface name in the container; default DefaultIfName
	IP      netip.Prefix // address with prefix length; zero: Attacher.Alloc picks one
	MAC     net.HardwareAddr
	Gateway netip.Addr // optional: default route via it inside the container
	MTU     int        // default DefaultMTU
	// TxOffload: TX checksum offload of the container end; "" is auto.
	TxOffload TxOffload
	// Ports are host ports the endpoint publishes (external_ids
	// ofctl-agent.ports); the agent forwards them to the container.
	Ports []endpoint.Published
	// Name is the endpoint's DNS name (external_ids ofctl-agent.name, one
	// DNS label, endpoint.ValidateName); "" for none.
	Name string
}

// OptionError reports an unusable option.
type OptionError struct {
	Field, Value, Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// normalize fills in defaults and validates everything that does not depend
// on an allocated IP.
func (o Options) normalize() (Options, error) {
	if o.IfName == "" {
		o.IfName = DefaultIfName
	}
	if o.MTU == 0 {
		o.MTU = DefaultMTU
	}
	var err error
	if o.TxOffload, err = ParseTxOffload(string(o.TxOffload)); err != nil {
		return o, err
	}
	if o.Network == "" || strings.ContainsFunc(o.Network, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return o, &OptionError{"network", o.Network, "want a non-empty name without spaces or control characters"}
	}
	if err := validIfName(o.IfName); err != nil {
		return o, &OptionError{"ifname", o.IfName, err.Error()}
	}
	if o.MTU < minMTU || o.MTU > maxMTU {
		return o, &OptionError{"mtu", fmt.Sprint(o.MTU), fmt.Sprintf("want %d..%d", minMTU, maxMTU)}
	}
	if o.Subnet.IsValid() && (!o.Subnet.Addr().Is4() || o.Subnet != o.Subnet.Masked()) {
		return o, &OptionError{"subnet", o.Subnet.String(), "want an IPv4 network address with prefix length"}
	}
	if o.MAC != nil {
		if err := checkMAC(o.MAC); err != nil {
			return o, &OptionError{"mac", o.MAC.String(), err.Error()}
		}
	}
	if o.Gateway.IsValid() && (!o.Gateway.Is4() || !unicast(o.Gateway)) {
		return o, &OptionError{"gateway", o.Gateway.String(), "not a unicast IPv4 address"}
	}
	if o.Name != "" {
		if err := endpoint.ValidateName(o.Name); err != nil {
			return o, &OptionError{"name", o.Name, err.Error()}
		}
	}
	if len(o.Ports) > 0 {
		// The agent's own parser is the rule: one host port per protocol,
		// ports 1-65535, tcp or udp.
		text := endpoint.FormatPorts(o.Ports)
		ports, err := endpoint.ParsePorts(text)
		if err != nil {
			return o, &OptionError{"publish", text, err.Error()}
		}
		o.Ports = ports
	}
	if o.IP.IsValid() {
		return o, o.checkAddress()
	}
	return o, nil
}

// checkAddress validates IP and Gateway together; Attach runs it again after
// allocating an IP.
func (o Options) checkAddress() error {
	ip, bits := o.IP.Addr(), o.IP.Bits()
	if !ip.Is4() || !unicast(ip) {
		return &OptionError{"ip", o.IP.String(), "not a unicast IPv4 address"}
	}
	if bits < 1 {
		return &OptionError{"ip", o.IP.String(), "prefix length must be 1..32"}
	}
	if bits <= 30 && (ip == o.IP.Masked().Addr() || ip == lastAddr(o.IP)) {
		return &OptionError{"ip", o.IP.String(), "network or broadcast address of its prefix"}
	}
	if o.Subnet.IsValid() && !o.Subnet.Contains(ip) {
		return &OptionError{"ip", o.IP.String(), "outside network " + o.Network + " (" + o.Subnet.String() + ")"}
	}
	if o.Subnet.IsValid() && bits != o.Subnet.Bits() {
		// The interface's route must cover the network: with a longer
		// prefix the network's other addresses are "unreachable".
		return &OptionError{"ip", o.IP.String(), fmt.Sprintf("prefix length differs from network %s's (%s)", o.Network, o.Subnet)}
	}
	if o.Gateway.IsValid() {
		if o.Gateway == ip {
			return &OptionError{"gateway", o.Gateway.String(), "equals the interface's own address"}
		}
		if !o.IP.Masked().Contains(o.Gateway) {
			return &OptionError{"gateway", o.Gateway.String(), "not on the interface's subnet " + o.IP.Masked().String()}
		}
	}
	return nil
}

// mac is the MAC to give the interface: the option or the one derived from
// the IP (0a:58:<ip>), which remote hosts expect.
func (o Options) mac() net.HardwareAddr {
	if o.MAC != nil {
		return o.MAC
	}
	return arp.DerivedMAC(o.IP.Addr())
}

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("want a 6-byte Ethernet address")
	}
	if mac[0]&1 == 1 {
		return fmt.Errorf("multicast address")
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return fmt.Errorf("all-zero address")
	}
	return nil
}

func unicast(ip netip.Addr) bool {
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsLoopback() && ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// lastAddr is the broadcast address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
