package gateway

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// Prefix starts every gateway port's name.
const Prefix = "ofgw-"

// maxIfName is the longest Linux interface name (IFNAMSIZ - 1).
const maxIfName = 15

// PortName is the name of network's gateway port (the OVS port and its
// interface in the host's namespace): "ofgw-" + the network's name when it
// fits in 15 characters, else "ofgw-" + its first 2 characters + "~" + 7 hex
// digits of its FNV-1a hash. The '~' never occurs in a network name, so a
// shortened name never equals a short one.
func PortName(network string) string {
	if len(Prefix)+len(network) <= maxIfName {
		return Prefix + network
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(network))
	return fmt.Sprintf("%s%.2s~%07x", Prefix, network, h.Sum32()&0xfffffff)
}

// Gateway is one of this host's gateways.
type Gateway struct {
	Network string
	VNI     uint32
	Port    string           // PortName(Network)
	Addr    netip.Prefix     // the gateway address with the network's prefix length, e.g. 10.100.1.1/16
	MAC     net.HardwareAddr // arp.DerivedMAC of the address
}

// IP is the gateway's address.
func (g Gateway) IP() netip.Addr { return g.Addr.Addr() }

// Equal reports whether two gateways are the same in every field.
func (g Gateway) Equal(o Gateway) bool {
	return g.Network == o.Network && g.VNI == o.VNI && g.Port == o.Port && g.Addr == o.Addr && g.MAC.String() == o.MAC.String()
}

func (g Gateway) String() string {
	return fmt.Sprintf("gateway %s %s (%s, %s)", g.Network, g.Addr, g.Port, g.MAC)
}

// Problem is a network whose gateway Plan refused.
type Problem struct {
	Network string
	Addr    netip.Addr // the refused address
	Reason  string
}

func (p Problem) Error() string {
	return fmt.Sprintf("gateway of network %s: %s: %s", p.Network, p.Addr, p.Reason)
}

// Plan computes node's gateways from the cluster view v (normalized) and
// the agent's configured addresses (network -> address; used where the
// view sets none: etcd mode). The result is sorted by network; refused
// addresses come back as Problems, one per network.
func Plan(v cluster.View, node string, configured map[string]netip.Addr) ([]Gateway, []Problem) {
	host, _ := v.Host(node)
	var gws []Gateway
	var probs []Problem
	ports := map[string]string{}
	for _, n := range v.Networks {
		if n.NoGateway || !n.Subnet.IsValid() {
			continue
		}
		rng := host.Ranges[n.Name]
		ip, ok := host.Gateways[n.Name]
		if !ok {
			ip, ok = configured[n.Name]
		}
		if !ok && rng.IsValid() {
			ip, ok = First(rng), true
		}
		if !ok {
			continue
		}
		if why := cluster.GatewayProblem(n.Subnet, rng, ip); why != "" {
			probs = append(probs, Problem{Network: n.Name, Addr: ip, Reason: why})
			continue
		}
		port := PortName(n.Name)
		if other, dup := ports[port]; dup {
			probs = append(probs, Problem{Network: n.Name, Addr: ip, Reason: fmt.Sprintf("port name %s is also network %s's", port, other)})
			continue
		}
		ports[port] = n.Name
		gws = append(gws, Gateway{Network: n.Name, VNI: n.VNI, Port: port,
			Addr: netip.PrefixFrom(ip, n.Subnet.Bits()), MAC: arp.DerivedMAC(ip)})
	}
	for name := range configured {
		if _, ok := v.Network(name); !ok {
			probs = append(probs, Problem{Network: name, Addr: configured[name], Reason: "no such network in the cluster view"})
		}
	}
	slices.SortFunc(probs, func(a, b Problem) int { return cmp.Compare(a.Network, b.Network) })
	return gws, probs
}

// First is the default gateway address of a range: its first host address
// (the range's address + 1), or the range's address for a /31 or /32.
func First(r netip.Prefix) netip.Addr {
	a := r.Masked().Addr()
	if r.Bits() >= 31 {
		return a
	}
	return a.Next()
}

// Addresses is each gateway's address by network, what the agent's
// allocator keeps out of its containers' choices.
func Addresses(gws []Gateway) map[string]netip.Addr {
	m := make(map[string]netip.Addr, len(gws))
	for _, g := range gws {
		m[g.Network] = g.IP()
	}
	return m
}
