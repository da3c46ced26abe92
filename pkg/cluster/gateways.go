package cluster

import (
	"fmt"
	"net/netip"
)

// checkGateways validates the hosts' gateway addresses: each names a known
// network whose gateways are on, is an IPv4 address of the network's subnet
// (not its network or broadcast address), inside the host's range when the
// host has one there (other hosts reach the range's addresses through it),
// and is no other host's gateway nor a remote endpoint's address.
func checkGateways(p *problems, v View, nets map[string]Network, loc *locator) {
	type key struct {
		network string
		ip      netip.Addr
	}
	held := map[key]string{}
	for e := range v.AllEndpoints() {
		held[key{e.Network, e.IP}] = fmt.Sprintf("endpoint %s of host %q", e.IP, e.Host)
	}
	for i, h := range v.Hosts {
		for _, net := range sortedKeys(h.Gateways) {
			ip := h.Gateways[net]
			line, item := loc.hostGateway(i, net), hostItem(i, h.Name)+" gateway "+net
			n, ok := nets[net]
			switch {
			case !ok:
				p.add(line, item, "unknown network %q", net)
				continue
			case n.NoGateway:
				p.add(line, item, "network %q has gateway: false", net)
				continue
			}
			if msg := addrProblem(ip, loc.quiet()); msg != "" {
				p.add(line, item, "%s", msg)
				continue
			}
			if !ip.IsValid() || !n.Subnet.IsValid() {
				continue // reported already
			}
			if msg := GatewayProblem(n.Subnet, h.Ranges[net], ip); msg != "" {
				p.add(line, item, "%s", msg)
				continue
			}
			k := key{net, ip}
			if who, dup := held[k]; dup {
				p.add(line, item, "%s is also %s", ip, who)
				continue
			}
			held[k] = fmt.Sprintf("the gateway of %s", hostItem(i, h.Name))
		}
	}
}

// GatewayProblem says why ip cannot be a host's gateway in a network of
// subnet where the host has range r (invalid: none); "" when it can.
func GatewayProblem(subnet, r netip.Prefix, ip netip.Addr) string {
	switch {
	case !ip.Is4():
		return fmt.Sprintf("%s is not IPv4", ip)
	case !subnet.Contains(ip):
		return fmt.Sprintf("%s is outside the network's subnet %s", ip, subnet)
	case subnet.Bits() <= 30 && ip == subnet.Masked().Addr():
		return fmt.Sprintf("%s is the network address of %s", ip, subnet)
	case subnet.Bits() <= 30 && ip == lastAddr(subnet):
		return fmt.Sprintf("%s is the broadcast address of %s", ip, subnet)
	case r.IsValid() && !r.Contains(ip):
		return fmt.Sprintf("%s is outside the host's range %s (other hosts reach only the range's addresses through it)", ip, r)
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
