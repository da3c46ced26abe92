package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
)

// validateState reports everything Build would skip or that would make
// flows collide (Build itself never fails: it leaves out what it cannot
// program): the oracle the tests hold their topologies to. The agent does
// not need it: pkg/cluster validates networks and hosts, pkg/endpoint's
// registry keeps addresses unique, the agent's model refuses endpoints that
// do not fit the view (an address in another host's range included).
func validateState(s State) error {
	var errs []error
	nets := map[string]Network{}
	vnis := map[uint32]string{}
	for _, n := range s.Networks {
		errs = append(errs, n.validate(nets, vnis))
		nets[n.Name], vnis[n.VNI] = n, n.Name
	}
	errs = append(errs, s.validateEndpoints(nets)...)
	errs = append(errs, s.validateHosts(nets)...)
	if s.TunnelPort > maxOFPort {
		errs = append(errs, fmt.Errorf("tunnel port %d is not an ordinary ofport", s.TunnelPort))
	}
	return errors.Join(errs...)
}

func (n Network) validate(nets map[string]Network, vnis map[uint32]string) error {
	switch {
	case n.Name == "":
		return errors.New("network with an empty name")
	case nets[n.Name].Name != "":
		return fmt.Errorf("network %s: defined twice", n.Name)
	case n.VNI < 1 || n.VNI > MaxVNI:
		return fmt.Errorf("network %s: VNI %d outside 1..%d", n.Name, n.VNI, MaxVNI)
	case vnis[n.VNI] != "":
		return fmt.Errorf("network %s: VNI %d already used by %s", n.Name, n.VNI, vnis[n.VNI])
	case !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() || n.Subnet.Masked() != n.Subnet:
		return fmt.Errorf("network %s: subnet %s is not a canonical IPv4 prefix", n.Name, n.Subnet)
	}
	return nil
}

// addrKey identifies an address or MAC within a network.
type addrKey struct{ network, addr string }

func (s State) validateEndpoints(nets map[string]Network) []error {
	var errs []error
	ports, ofports := map[string]bool{}, map[uint32]string{}
	ips, macs := map[addrKey]string{}, map[addrKey]string{}
	claim := func(m map[addrKey]string, k addrKey, who string) {
		if prev, dup := m[k]; dup {
			errs = append(errs, fmt.Errorf("%s: %s already used in network %s by %s", who, k.addr, k.network, prev))
		}
		m[k] = who
	}
	for _, e := range s.Endpoints {
		who := "endpoint " + e.Port
		errs = append(errs, checkAddrs(who, nets, e.Network, e.IP, e.MAC))
		if e.Port == "" || ports[e.Port] {
			errs = append(errs, fmt.Errorf("%s: empty or duplicate port name", who))
		}
		if e.OFPort == 0 || e.OFPort > maxOFPort || e.OFPort == s.TunnelPort || ofports[e.OFPort] != "" {
			errs = append(errs, fmt.Errorf("%s: ofport %d is invalid or taken", who, e.OFPort))
		}
		ports[e.Port], ofports[e.OFPort] = true, e.Port
		claim(ips, addrKey{e.Network, e.IP.String()}, who)
		claim(macs, addrKey{e.Network, e.MAC.String()}, who)
	}
	for _, e := range s.RemoteEndpoints {
		who := "remote endpoint " + e.IP.String()
		errs = append(errs, checkAddrs(who, nets, e.Network, e.IP, e.MAC))
		if !s.hasHost(e.Host) {
			errs = append(errs, fmt.Errorf("%s: unknown host %q", who, e.Host))
		}
		claim(ips, addrKey{e.Network, e.IP.String()}, who)
		claim(macs, addrKey{e.Network, e.MAC.String()}, who)
	}
	return errs
}

func (s State) hasHost(name string) bool {
	for _, h := range s.Hosts {
		if h.Name == name {
			return true
		}
	}
	return false
}

// checkAddrs validates an endpoint's network, IP and MAC.
func checkAddrs(who string, nets map[string]Network, network string, ip netip.Addr, mac net.HardwareAddr) error {
	n, ok := nets[network]
	switch {
	case !ok:
		return fmt.Errorf("%s: unknown network %q", who, network)
	case !n.Subnet.Contains(ip):
		return fmt.Errorf("%s: IP %s outside network %s (%s)", who, ip, n.Name, n.Subnet)
	case len(mac) != 6 || mac[0]&1 != 0:
		return fmt.Errorf("%s: MAC %q is not a unicast Ethernet address", who, mac)
	}
	return nil
}

func (s State) validateHosts(nets map[string]Network) []error {
	var errs []error
	names, underlay := map[string]bool{}, map[netip.Addr]string{}
	type owned struct {
		p    netip.Prefix
		host string
	}
	ranges := map[string][]owned{}
	for _, h := range s.Hosts {
		if h.Name == "" || names[h.Name] {
			errs = append(errs, fmt.Errorf("host %q: empty or duplicate name", h.Name))
		}
		if !h.TunnelIP.Is4() || underlay[h.TunnelIP] != "" {
			errs = append(errs, fmt.Errorf("host %s: tunnel IP %s is not IPv4 or is taken", h.Name, h.TunnelIP))
		}
		names[h.Name], underlay[h.TunnelIP] = true, h.Name
		for _, network := range slices.Sorted(maps.Keys(h.Ranges)) {
			p := h.Ranges[network]
			n, ok := nets[network]
			if !ok || !p.IsValid() || p.Masked() != p || !n.Subnet.Contains(p.Addr()) || p.Bits() < n.Subnet.Bits() {
				errs = append(errs, fmt.Errorf("host %s: range %s is not inside network %q", h.Name, p, network))
				continue
			}
			for _, o := range ranges[network] {
				if o.p.Overlaps(p) {
					errs = append(errs, fmt.Errorf("host %s: range %s overlaps %s of host %s", h.Name, p, o.p, o.host))
				}
			}
			ranges[network] = append(ranges[network], owned{p, h.Name})
		}
	}
	for _, e := range s.Endpoints {
		for _, o := range ranges[e.Network] {
			if o.p.Contains(e.IP) {
				errs = append(errs, fmt.Errorf("endpoint %s: IP %s inside range %s of host %s", e.Port, e.IP, o.p, o.host))
			}
		}
	}
	return errs
}
