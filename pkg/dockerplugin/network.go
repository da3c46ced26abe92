package dockerplugin

import (
	"fmt"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// AddressSpace is the address space the IPAM driver announces. A network
// whose pool is in another space got its addresses from another IPAM
// driver, which knows nothing of the hosts' shares: CreateNetwork refuses it.
const AddressSpace = "ofctl-agent"

// How the user names the network, for messages.
const (
	hintDriver = "-o " + OptNetwork + "=NAME"
	hintIPAM   = "--ipam-opt " + OptNetwork + "=NAME"
)

// resolveNetwork finds the network of the cluster view a Docker network
// binds to: the one called name when it is given (and then the pool, if
// given, must be its subnet), else the only one whose subnet is pool.
// hint says how the user names a network in the call at hand.
func resolveNetwork(v cluster.View, name string, pool netip.Prefix, hint string) (cluster.Network, error) {
	if name != "" {
		n, ok := v.Network(name)
		if !ok {
			return n, invalid("network %q is not in the cluster view (networks: %s)", name, networkNames(v))
		}
		if pool.IsValid() && pool != n.Subnet {
			return n, invalid("subnet %s does not match network %q of the cluster view (%s): omit --subnet or give %s", pool, name, n.Subnet, n.Subnet)
		}
		return n, nil
	}
	if !pool.IsValid() {
		return cluster.Network{}, invalid("which network of the cluster view? give %s (Docker passes -o options to the network driver only and --ipam-opt options to the IPAM driver only) or --subnet", hint)
	}
	var found []cluster.Network
	for _, n := range v.Networks {
		if n.Subnet == pool {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return cluster.Network{}, invalid("no network of the cluster view has subnet %s (networks: %s)", pool, networkNames(v))
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, n := range found {
		names[i] = n.Name
	}
	return cluster.Network{}, invalid("subnet %s belongs to networks %s of the cluster view: choose one with %s", pool, joinNames(names), hint)
}

func networkNames(v cluster.View) string {
	names := make([]string, len(v.Networks))
	for i, n := range v.Networks {
		names[i] = fmt.Sprintf("%s %s", n.Name, n.Subnet)
	}
	return joinNames(names)
}

// parsePool reads a pool in CIDR form: IPv4 and without host bits.
func parsePool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, invalid("subnet %q: %v", s, err)
	}
	if !p.Addr().Is4() {
		return p, invalid("subnet %s: ofctl-agent networks are IPv4 only", p)
	}
	if p.Masked() != p {
		return p, invalid("subnet %s has host bits set (the network is %s)", p, p.Masked())
	}
	return p, nil
}

func (s *Server) createNetwork(c *call) (any, error) {
	var req createNetworkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := checkID("NetworkID", req.NetworkID); err != nil {
		return nil, err
	}
	c.log("docker_network", req.NetworkID)
	opts, err := parseNetworkOptions(req.Options)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if opts.IPv6 || len(req.IPv6Data) > 0 {
		return nil, invalid("IPv6 is not supported: ofctl-agent networks are IPv4 only (drop --ipv6)")
	}
	if len(req.IPv4Data) != 1 {
		return nil, invalid("a network has one IPv4 pool, Docker sent %d", len(req.IPv4Data))
	}
	d := req.IPv4Data[0]
	if d.AddressSpace != AddressSpace {
		return nil, invalid("the network's addresses must come from ofctl-agent's IPAM driver: add --ipam-driver ofctl-agent (address space %q is another driver's)", d.AddressSpace)
	}
	pool, err := parsePool(d.Pool)
	if err != nil {
		return nil, err
	}
	var gw netip.Addr
	if d.Gateway != "" {
		p, err := netip.ParsePrefix(d.Gateway)
		if err != nil || !pool.Contains(p.Addr()) {
			return nil, invalid("gateway %q is not an address of %s", d.Gateway, pool)
		}
		gw = p.Addr()
	}
	name := opts.Network
	if name == "" {
		name, _ = s.st.takePool(pool) // the network RequestPool resolved for this pool
	} else {
		s.st.forgetPool(pool)
	}
	v, err := s.view()
	if err != nil {
		return nil, err
	}
	n, err := resolveNetwork(v, name, pool, hintDriver)
	if err != nil {
		return nil, err
	}
	b := Network{ID: req.NetworkID, Name: n.Name, Subnet: n.Subnet, Gateway: gw, Internal: opts.Internal}
	if err := s.st.putNetwork(b); err != nil {
		return nil, err
	}
	c.log("network", n.Name)
	s.cfg.Logger.Info("docker network bound to the cluster view", "docker_network", b.ID, "network", b.Name, "subnet", b.Subnet, "internal", b.Internal)
	return struct{}{}, nil
}

func (s *Server) deleteNetwork(c *call) (any, error) {
	var req networkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := checkID("NetworkID", req.NetworkID); err != nil {
		return nil, err
	}
	c.log("docker_network", req.NetworkID)
	n, ok, err := s.st.deleteNetwork(req.NetworkID)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Answer yes: a refusal would leave the user a network that
		// docker network rm can never remove.
		c.ignore("unknown network")
		return struct{}{}, nil
	}
	c.log("network", n.Name)
	return struct{}{}, nil
}

// allocateNetwork is swarm's call (managers allocate global-scope
// networks); with a local-scope driver swarm never sends it.
func (s *Server) allocateNetwork(c *call) (any, error) {
	return nil, invalid("swarm mode is not supported: ofctl-agent networks are local-scope networks of each host's dockerd")
}

func (s *Server) freeNetwork(c *call) (any, error) {
	var req networkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) discover(c *call) (any, error) {
	var req discoveryRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	// Node and datastore discovery feed overlay-style drivers; hosts come
	// from the cluster view here.
	return struct{}{}, nil
}

// view returns the cluster view in force.
func (s *Server) view() (cluster.View, error) {
	v, ok := s.cfg.View()
	if !ok {
		return v, fmt.Errorf("no cluster view yet (the agent has not read its cluster file or etcd)")
	}
	return v, nil
}

// checkID refuses a missing or odd Docker id (Docker's are 64 hex digits;
// anything printable and short enough passes, for other engines).
func checkID(field, id string) error {
	if id == "" {
		return invalid("%s missing", field)
	}
	if len(id) > 128 {
		return invalid("%s of %d characters", field, len(id))
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' || r == '.') {
			return invalid("%s %q: unexpected character %q", field, id, r)
		}
	}
	return nil
}
