package netfilter

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// DefaultTable is the name of the agent's table (family ip).
const DefaultTable = "ofctl-agent"

// The fixed parts of the table. Per network there are two more chains,
// "to-<network>" and "from-<network>".
const (
	blockedSet     = "blocked"
	setID          = 1 // the set's id within a batch (any non-zero value)
	chainPublished = "published"
	chainCount     = "count-published"
	dockerTable    = "filter"      // iptables-nft's table...
	dockerChain    = "DOCKER-USER" // ...and Docker's chain for user rules
)

var (
	loopback = netip.MustParsePrefix("127.0.0.0/8")
	// The base chains: name, type, hook and priority (policy accept).
	prerouting  = baseChain{"prerouting", nftables.ChainTypeNAT, *nftables.ChainHookPrerouting, *nftables.ChainPriorityNATDest}
	outputNAT   = baseChain{"output-nat", nftables.ChainTypeNAT, *nftables.ChainHookOutput, *nftables.ChainPriorityNATDest}
	postrouting = baseChain{"postrouting", nftables.ChainTypeNAT, *nftables.ChainHookPostrouting, *nftables.ChainPriorityNATSource}
	forward     = baseChain{"forward", nftables.ChainTypeFilter, *nftables.ChainHookForward, *nftables.ChainPriorityFilter}
	input       = baseChain{"input", nftables.ChainTypeFilter, *nftables.ChainHookInput, *nftables.ChainPriorityFilter}
	output      = baseChain{"output", nftables.ChainTypeFilter, *nftables.ChainHookOutput, *nftables.ChainPriorityFilter}
)

// baseChain is a chain attached to a hook.
type baseChain struct {
	name string
	typ  nftables.ChainType
	hook nftables.ChainHook
	prio nftables.ChainPriority
}

// Chain is one chain of the table; base is nil for a regular chain.
type Chain struct {
	Name  string
	base  *baseChain
	Rules []*Rule
}

// Rule is one rule. Its comment is its identity: unique in its chain.
type Rule struct {
	Comment string
	terms   []term
	count   *countRef // what its counter measures; nil: not exported
}

func rule(comment string, terms ...term) *Rule { return &Rule{Comment: comment, terms: terms} }

// counted gives the rule's counter a meaning for Counters.
func (r *Rule) counted(c countRef) *Rule { r.count = &c; return r }

func (r *Rule) exprs() []expr.Any {
	var out []expr.Any
	for _, t := range r.terms {
		out = append(out, t.exprs()...)
	}
	return out
}

// String prints the rule as `nft list` does, counters at zero.
func (r *Rule) String() string {
	parts := make([]string, 0, len(r.terms)+1)
	for _, t := range r.terms {
		parts = append(parts, t.String())
	}
	return strings.Join(parts, " ") + fmt.Sprintf(" comment %q", r.Comment)
}

// Ruleset is the desired content of the agent's table, of Docker's
// DOCKER-USER chain, and the interfaces that need IPv4 forwarding.
type Ruleset struct {
	Table      string
	Chains     []*Chain
	blocked    []ipRange // the elements of set "blocked": State.Blocked minus State.Allowed
	DockerUser []*Rule   // first in DOCKER-USER when that chain exists
	Gateways   []string  // the accepted networks' gateway ports
	Uplinks    []string  // State.Uplinks (empty: the default routes' interfaces)
	networks   []Network
	publishes  []Publish
}

// Build returns the rules for s in table (DefaultTable when empty), and a
// *Refusal for each item of s left out. It is pure: the same State gives
// the same Ruleset.
func Build(table string, s State) (*Ruleset, []error) {
	if table == "" {
		table = DefaultTable
	}
	a, refused := check(s)
	rs := &Ruleset{Table: table, blocked: a.blocked, Uplinks: a.uplinks, networks: a.networks, publishes: a.publishes}
	rs.Chains = append(rs.Chains, natChains(a)...)
	rs.Chains = append(rs.Chains, filterChains(a)...)
	for _, n := range a.networks {
		rs.Chains = append(rs.Chains, toChain(n), fromChain(n))
		rs.Gateways = append(rs.Gateways, n.Gateway)
		rs.DockerUser = append(rs.DockerUser,
			rule(dockerComment(table, "from", n), iif(n.Gateway), counter{}, accept),
			rule(dockerComment(table, "to", n), oif(n.Gateway), counter{}, accept))
	}
	return rs, refused
}

func dockerComment(table, dir string, n Network) string {
	return fmt.Sprintf("%s: %s gateway %s", table, dir, n.Name)
}

// natChains: published ports (DNAT) from outside and from the host itself,
// masquerading (and hairpin masquerading for a network's own published
// ports).
func natChains(a accepted) []*Chain {
	pre := &Chain{Name: prerouting.name, base: &prerouting, Rules: []*Rule{
		rule("published ports", fibLocal{}, jump(chainPublished))}}
	out := &Chain{Name: outputNAT.name, base: &outputNAT, Rules: []*Rule{
		rule("published ports", notDaddr(loopback), fibLocal{}, jump(chainPublished))}}
	pub := &Chain{Name: chainPublished}
	for _, p := range a.publishes {
		pub.Rules = append(pub.Rules, rule(fmt.Sprintf("%s %s", p.key(), p.Endpoint),
			portMatch{p.Proto, true, p.HostPort}, counter{}, dnatTo{p.IP, p.Port}).
			counted(countRef{kind: countPublishConns, publishes: []Publish{p}}))
	}
	post := &Chain{Name: postrouting.name, base: &postrouting}
	for _, n := range a.networks {
		post.Rules = append(post.Rules, rule("hairpin "+n.Name,
			oif(n.Gateway), saddr(n.Subnet), ctDNAT, counter{}, masquerade{}))
	}
	for _, n := range a.networks {
		post.Rules = append(post.Rules, rule("to gateway "+n.Name, oif(n.Gateway), ret))
	}
	for _, n := range a.networks {
		if !n.Routed {
			post.Rules = append(post.Rules, rule("masquerade "+n.Name, saddr(n.Subnet), counter{}, masquerade{}).
				counted(countRef{kind: countMasqueraded, network: n.Name}))
		}
	}
	return []*Chain{pre, out, post, pub}
}

// filterChains: the forward, input and output hooks, and the counters of
// published ports' traffic.
func filterChains(a accepted) []*Chain {
	count := rule("count published", ctDNAT, jump(chainCount))
	fwd := &Chain{Name: forward.name, base: &forward, Rules: []*Rule{count}}
	for _, n := range a.networks {
		fwd.Rules = append(fwd.Rules, rule("to "+n.Name, oif(n.Gateway), jump("to-"+n.Name)))
	}
	for _, n := range a.networks {
		fwd.Rules = append(fwd.Rules, rule("from "+n.Name, iif(n.Gateway), jump("from-"+n.Name)))
	}
	in := &Chain{Name: input.name, base: &input, Rules: []*Rule{count}}
	for _, n := range a.networks {
		in.Rules = append(in.Rules, rule("blocked "+n.Name, iif(n.Gateway), inSet{blockedSet}, counter{}, drop).
			counted(countRef{kind: countBlocked, network: n.Name}))
	}
	outp := &Chain{Name: output.name, base: &output, Rules: []*Rule{count}}
	return []*Chain{fwd, in, outp, countChain(a.publishes)}
}

// countChain counts the packets of connections to published ports, both
// ways, whichever hook they pass (forward, input or output: each packet
// passes one). Publishes of the same container port share its rules.
func countChain(publishes []Publish) *Chain {
	c := &Chain{Name: chainCount}
	byTarget := map[string]*countRef{}
	for _, p := range publishes {
		target := fmt.Sprintf("%s:%d/%s", p.IP, p.Port, p.Proto)
		if ref, seen := byTarget[target]; seen {
			ref.publishes = append(ref.publishes, p)
			continue
		}
		ref := &countRef{kind: countPublishTraffic, publishes: []Publish{p}}
		byTarget[target] = ref
		host := netip.PrefixFrom(p.IP, 32)
		to := rule("to "+target, daddr(host), portMatch{p.Proto, true, p.Port}, counter{})
		from := rule("from "+target, saddr(host), portMatch{p.Proto, false, p.Port}, counter{})
		to.count, from.count = ref, ref
		c.Rules = append(c.Rules, to, from)
	}
	return c
}

// toChain judges what the host forwards to a network: replies and
// published ports pass, anything else (from outside or another network)
// is dropped.
func toChain(n Network) *Chain {
	return &Chain{Name: "to-" + n.Name, Rules: []*Rule{
		rule("published ports", ctDNAT, accept),
		rule("replies", ctReplyOrRelated, counter{}, accept).counted(countRef{kind: countIngress, network: n.Name}),
		rule("unsolicited", counter{}, drop).counted(countRef{kind: countUnsolicited, network: n.Name}),
	}}
}

// fromChain judges what the host forwards from a network to anywhere but
// a gateway port (those went through toChain first).
func fromChain(n Network) *Chain {
	return &Chain{Name: "from-" + n.Name, Rules: []*Rule{
		rule("spoofed", notSaddr(n.Subnet), counter{}, drop).counted(countRef{kind: countSpoofed, network: n.Name}),
		rule("published ports", ctDNAT, accept),
		rule("blocked", inSet{blockedSet}, counter{}, drop).counted(countRef{kind: countBlocked, network: n.Name}),
		rule("outside", counter{}, accept).counted(countRef{kind: countEgress, network: n.Name}),
	}}
}
