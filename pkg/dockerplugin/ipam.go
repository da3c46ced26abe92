package dockerplugin

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// A pool id is "<network>/<subnet>", e.g. "blue/10.1.0.0/16": Docker keeps
// it and sends it back with every address call, so the IPAM driver needs
// no state of its own to know the network (network names hold no '/').
func poolID(network string, subnet netip.Prefix) string { return network + "/" + subnet.String() }

func parsePoolID(id string) (string, netip.Prefix, error) {
	name, rest, ok := strings.Cut(id, "/")
	if !ok || name == "" {
		return "", netip.Prefix{}, invalid("pool id %q is not one of ofctl-agent's (<network>/<subnet>)", id)
	}
	p, err := parsePool(rest)
	if err != nil {
		return "", p, invalid("pool id %q: %v", id, err)
	}
	return name, p, nil
}

func (s *Server) requestPool(c *call) (any, error) {
	var req requestPoolRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.V6 {
		return nil, invalid("IPv6 is not supported: ofctl-agent networks are IPv4 only (drop --ipv6)")
	}
	if req.AddressSpace != AddressSpace {
		return nil, invalid("address space %q is not ofctl-agent's (%s)", req.AddressSpace, AddressSpace)
	}
	if req.SubPool != "" {
		return nil, invalid("--ip-range %s is not supported: this host hands out addresses of its own share of the network", req.SubPool)
	}
	name, err := ipamNetworkOption(req.Options)
	if err != nil {
		return nil, invalid("%v", err)
	}
	var pool netip.Prefix
	if req.Pool != "" {
		if pool, err = parsePool(req.Pool); err != nil {
			return nil, err
		}
	}
	v, err := s.view()
	if err != nil {
		return nil, err
	}
	n, err := resolveNetwork(v, name, pool, hintIPAM)
	if err != nil {
		return nil, err
	}
	c.log("network", n.Name)
	s.st.notePool(n.Subnet, n.Name)
	return requestPoolResponse{PoolID: poolID(n.Name, n.Subnet), Pool: n.Subnet.String(), Data: map[string]string{}}, nil
}

// decodePool decodes a request that names a pool and reads the pool id.
func (c *call) decodePool(req interface{ poolID() string }) (string, netip.Prefix, error) {
	if err := c.decode(req); err != nil {
		return "", netip.Prefix{}, err
	}
	name, subnet, err := parsePoolID(req.poolID())
	if err == nil {
		c.log("network", name)
	}
	return name, subnet, err
}

func (s *Server) releasePool(c *call) (any, error) {
	var req poolRequest
	_, subnet, err := c.decodePool(&req)
	if err != nil {
		return nil, err
	}
	s.st.forgetPool(subnet)
	return struct{}{}, nil
}

// requestAddress gives the network's gateway (this host's) or reserves an
// address of this host's share.
func (s *Server) requestAddress(c *call) (any, error) {
	var req requestAddressRequest
	name, subnet, err := c.decodePool(&req)
	if err != nil {
		return nil, err
	}
	var want netip.Addr
	if req.Address != "" {
		if want, err = netip.ParseAddr(req.Address); err != nil || !subnet.Contains(want) {
			return nil, invalid("address %q is not an address of network %s (%s)", req.Address, name, subnet)
		}
	}
	if req.Options[optAddressType] == addrGateway {
		gw, err := s.cfg.Addresses.Gateway(name)
		if err != nil {
			return nil, fmt.Errorf("gateway of network %s: %w", name, err)
		}
		if !gw.IsValid() {
			// No gateway on this host (yet): Docker insists on one for
			// the network's record, but a remote driver's containers
			// route as Join says. The subnet's own address is a
			// placeholder no container is given.
			if want.IsValid() {
				return nil, invalid("--gateway %s: this host has no gateway in network %s (omit --gateway)", want, name)
			}
			gw = subnet.Addr()
		}
		if !subnet.Contains(gw) {
			return nil, fmt.Errorf("gateway %s of network %s is outside %s", gw, name, subnet)
		}
		if want.IsValid() && want != gw {
			return nil, invalid("--gateway %s: this host's gateway in network %s is %s (omit --gateway)", want, name, gw)
		}
		return requestAddressResponse{Address: netip.PrefixFrom(gw, subnet.Bits()).String()}, nil
	}
	if err := s.checkInView(name, subnet); err != nil {
		return nil, err
	}
	got, err := s.cfg.Addresses.Reserve(name, want)
	if errors.Is(err, ErrAddressUnavailable) || errors.Is(err, ErrExhausted) {
		return nil, invalid("network %s: %v", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	if !subnet.Contains(got) {
		_ = s.cfg.Addresses.Release(name, got)
		return nil, fmt.Errorf("network %s: allocator gave %s, outside %s", name, got, subnet)
	}
	c.log("ip", got)
	return requestAddressResponse{Address: netip.PrefixFrom(got, subnet.Bits()).String()}, nil
}

// checkInView refuses addresses of a network the cluster view dropped or
// renumbered since Docker's network was made.
func (s *Server) checkInView(name string, subnet netip.Prefix) error {
	v, err := s.view()
	if err != nil {
		return err
	}
	n, ok := v.Network(name)
	if !ok {
		return invalid("network %q is no longer in the cluster view", name)
	}
	if n.Subnet != subnet {
		return invalid("network %q is now %s in the cluster view, this Docker network has %s: re-create it", name, n.Subnet, subnet)
	}
	return nil
}

// releaseAddress gives an address back; the gateway is the host's and
// stays.
func (s *Server) releaseAddress(c *call) (any, error) {
	var req releaseAddressRequest
	name, subnet, err := c.decodePool(&req)
	if err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(req.Address)
	if err != nil || !subnet.Contains(addr) {
		return nil, invalid("address %q is not an address of network %s (%s)", req.Address, name, subnet)
	}
	c.log("ip", addr)
	if gw, err := s.cfg.Addresses.Gateway(name); err == nil && gw == addr {
		return struct{}{}, nil
	}
	return struct{}{}, s.cfg.Addresses.Release(name, addr)
}
