package netfilter

import (
	"fmt"

	"github.com/google/nftables/expr"
)

// countKind is what a rule's counter measures.
type countKind int

const (
	countMasqueraded    countKind = iota // connections masqueraded (a NAT rule sees first packets only)
	countEgress                          // forwarded from the network to the outside
	countIngress                         // forwarded replies from the outside to the network
	countSpoofed                         // dropped: source outside the network's subnet
	countBlocked                         // dropped: to a blocked address (forwarded or to the host)
	countUnsolicited                     // dropped: new connection towards the network, not to a published port
	countPublishConns                    // connections to a published port (DNAT rule: first packets)
	countPublishTraffic                  // packets of those connections, both ways
)

// countRef ties a rule's counter to a network or to publishes.
type countRef struct {
	kind      countKind
	network   string
	publishes []Publish // countPublish*: the publishes measured (several when they share a container port)
}

// Counter is a packet and byte count.
type Counter struct{ Packets, Bytes uint64 }

func (c *Counter) add(o Counter) { c.Packets += o.Packets; c.Bytes += o.Bytes }

// NetworkCounters are a network's counters. Egress and Ingress count the
// traffic forwarded between the network and the outside world (anything
// but another gateway port): masqueraded when NAT is on.
type NetworkCounters struct {
	Network         string
	Masqueraded     uint64  // connections masqueraded
	Egress, Ingress Counter // packets and bytes out of and back into the network
	// Dropped by reason: "spoofed" (a source outside the subnet),
	// "blocked" (to a Blocked address), "unsolicited" (a new connection
	// towards the network from outside or from another network, not to a
	// published port).
	Dropped map[string]Counter
}

// PublishCounters are a published port's counters.
type PublishCounters struct {
	Publish
	Connections uint64  // connections DNATed (from outside, the host and containers)
	Traffic     Counter // their packets and bytes, both ways; shared by publishes of the same container port
}

// Counters are the values of the table's counters.
type Counters struct {
	Networks  []NetworkCounters // in Ruleset order (by name)
	Publishes []PublishCounters // by protocol and host port
}

var dropReasons = map[countKind]string{countSpoofed: "spoofed", countBlocked: "blocked", countUnsolicited: "unsolicited"}

// counters maps the kernel's counter values, by chain and rule comment,
// onto the ruleset's networks and publishes. Rules missing from the kernel
// count zero.
func (rs *Ruleset) counters(values map[ruleID]Counter) Counters {
	var out Counters
	nets := map[string]*NetworkCounters{}
	out.Networks = make([]NetworkCounters, len(rs.networks))
	for i, n := range rs.networks {
		out.Networks[i] = NetworkCounters{Network: n.Name, Dropped: map[string]Counter{}}
		for _, r := range dropReasons {
			out.Networks[i].Dropped[r] = Counter{}
		}
		nets[n.Name] = &out.Networks[i]
	}
	pubs := map[string]*PublishCounters{}
	out.Publishes = make([]PublishCounters, len(rs.publishes))
	for i, p := range rs.publishes {
		out.Publishes[i] = PublishCounters{Publish: p}
		pubs[p.key()] = &out.Publishes[i]
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if r.count == nil {
				continue
			}
			v := values[ruleID{c.Name, r.Comment}]
			if n := nets[r.count.network]; n != nil {
				n.add(r.count.kind, v)
			}
			for _, p := range r.count.publishes {
				pubs[p.key()].add(r.count.kind, v)
			}
		}
	}
	return out
}

func (n *NetworkCounters) add(k countKind, v Counter) {
	switch k {
	case countMasqueraded:
		n.Masqueraded += v.Packets
	case countEgress:
		n.Egress.add(v)
	case countIngress:
		n.Ingress.add(v)
	default:
		d := n.Dropped[dropReasons[k]]
		d.add(v)
		n.Dropped[dropReasons[k]] = d
	}
}

func (p *PublishCounters) add(k countKind, v Counter) {
	if k == countPublishConns {
		p.Connections += v.Packets
		return
	}
	p.Traffic.add(v)
}

// ruleID names a rule of the table.
type ruleID struct{ chain, comment string }

// counterOf returns the value of a rule's counter expression.
func counterOf(exprs []expr.Any) (Counter, bool) {
	for _, e := range exprs {
		if c, ok := e.(*expr.Counter); ok {
			return Counter{Packets: c.Packets, Bytes: c.Bytes}, true
		}
	}
	return Counter{}, false
}

// Counters reads the table's counters from the kernel (a few netlink
// dumps: cheap enough for every scrape).
func (k *Keeper) Counters() (Counters, error) {
	rs := k.Ruleset()
	if rs == nil {
		return Counters{}, nil
	}
	c, err := k.conn()
	if err != nil {
		return Counters{}, err
	}
	chains, err := listChains(c)
	if err != nil {
		return Counters{}, fmt.Errorf("netfilter counters: %w", err)
	}
	kt, err := readTable(c, rs.Table, chains)
	if err != nil {
		return Counters{}, fmt.Errorf("netfilter counters: %w", err)
	}
	values := map[ruleID]Counter{}
	for name, ch := range kt.chains {
		for _, r := range ch.rules {
			id := ruleID{name, r.comment}
			if v, ok := counterOf(r.exprs); ok {
				if _, dup := values[id]; !dup {
					values[id] = v
				}
			}
		}
	}
	return rs.counters(values), nil
}
