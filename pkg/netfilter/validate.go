package netfilter

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// accepted is the part of a State the rules are built from: every item
// valid, no two in conflict, in a fixed order (networks by name, publishes
// by protocol and host port) so that the same State always gives the same
// rules.
type accepted struct {
	networks  []Network
	publishes []Publish
	blocked   []ipRange // Blocked minus Allowed, sorted, disjoint
	uplinks   []string
}

// check splits s into what can be built and the refusals.
func check(s State) (accepted, []error) {
	var a accepted
	var refused []error
	blocked, allowed, underlay := prefixList("blocked", s.Blocked, &refused),
		prefixList("allowed", s.Allowed, &refused), prefixList("underlay", s.Underlay, &refused)
	byName := map[string]Network{}
	for _, n := range s.Networks {
		if r := checkNetwork(n, byName, underlay, blocked); r != nil {
			refused = append(refused, r)
			continue
		}
		byName[n.Name] = n
		a.networks = append(a.networks, n)
	}
	slices.SortFunc(a.networks, func(x, y Network) int { return cmp.Compare(x.Name, y.Name) })
	taken := map[string]Publish{}
	for _, p := range s.Publishes {
		if r := checkPublish(p, byName, taken); r != nil {
			refused = append(refused, r)
			continue
		}
		taken[p.key()] = p
		a.publishes = append(a.publishes, p)
	}
	slices.SortFunc(a.publishes, func(x, y Publish) int {
		return cmp.Or(cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.HostPort, y.HostPort))
	})
	a.blocked = subtract(merge(blocked), merge(allowed))
	for _, u := range s.Uplinks {
		if msg := ifNameProblem(u); msg != "" {
			refused = append(refused, refuse("uplink", fmt.Sprintf("uplink %q", u), ErrInvalid, "name %s", msg))
		} else if !slices.Contains(a.uplinks, u) {
			a.uplinks = append(a.uplinks, u)
		}
	}
	return a, refused
}

// prefixList returns the IPv4 prefixes of list, masked, refusing others.
func prefixList(kind string, list []netip.Prefix, refused *[]error) []netip.Prefix {
	var ok []netip.Prefix
	for _, p := range list {
		if !p.IsValid() || !p.Addr().Is4() {
			*refused = append(*refused, refuse("address", fmt.Sprintf("%s %s", kind, p), ErrInvalid, "not an IPv4 prefix"))
			continue
		}
		ok = append(ok, p.Masked())
	}
	return ok
}

// checkNetwork validates n against the networks accepted before it.
func checkNetwork(n Network, byName map[string]Network, underlay, blocked []netip.Prefix) *Refusal {
	item := fmt.Sprintf("network %q", n.Name)
	bad := func(format string, args ...any) *Refusal { return refuse("network", item, ErrInvalid, format, args...) }
	if msg := nameProblem(n.Name, maxNetworkName); msg != "" {
		return bad("name %s", msg)
	}
	if msg := ifNameProblem(n.Gateway); msg != "" {
		return bad("gateway interface name %q %s", n.Gateway, msg)
	}
	s := n.Subnet
	switch {
	case !s.IsValid() || !s.Addr().Is4():
		return bad("subnet %s is not an IPv4 prefix", s)
	case s.Bits() == 0 || s.Bits() > 30:
		return bad("subnet %s: prefix length must be 1..30", s)
	case s.Masked() != s:
		return bad("subnet %s has host bits set (%s)", s, s.Masked())
	}
	if !n.Routed {
		for _, u := range slices.Concat(underlay, blocked) {
			if u.Overlaps(s) {
				return bad("subnet %s overlaps the underlay (%s) and NAT is on", s, u)
			}
		}
	}
	for _, o := range byName {
		conflict := func(format string, args ...any) *Refusal {
			return refuse("network", item, ErrConflict, format, args...)
		}
		switch {
		case o.Name == n.Name:
			return conflict("duplicate network name")
		case o.Gateway == n.Gateway:
			return conflict("gateway %q is network %q's", n.Gateway, o.Name)
		case o.Subnet.Overlaps(s):
			return conflict("subnet %s overlaps network %q's %s", s, o.Name, o.Subnet)
		}
	}
	return nil
}

// checkPublish validates p against the networks and the ports taken.
func checkPublish(p Publish, networks map[string]Network, taken map[string]Publish) *Refusal {
	item := p.String()
	bad := func(format string, args ...any) *Refusal { return refuse("publish", item, ErrInvalid, format, args...) }
	if msg := endpointProblem(p.Endpoint); msg != "" {
		return bad("endpoint %s", msg)
	}
	if p.Proto != TCP && p.Proto != UDP {
		return bad("protocol %q is not tcp or udp", p.Proto)
	}
	if p.HostPort == 0 || p.Port == 0 {
		return bad("port 0")
	}
	n, ok := networks[p.Network]
	if !ok {
		return bad("network %q is not served (unknown or refused)", p.Network)
	}
	s := n.Subnet
	last := netip.AddrFrom4(lastAddr(s))
	if !p.IP.Is4() || !s.Contains(p.IP) || p.IP == s.Addr() || p.IP == last {
		return bad("address %s is not a host address of network %q (%s)", p.IP, n.Name, s)
	}
	if o, dup := taken[p.key()]; dup {
		return refuse("publish", item, ErrConflict, "host port %s is taken by %q", p.key(), o.Endpoint)
	}
	return nil
}
