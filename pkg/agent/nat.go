package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
)

// NATConfig turns on the host's packet filter for the gateways (package
// netfilter: outbound NAT, published ports, isolation through the host,
// IPv4 forwarding where needed). nil in Config: the agent keeps no packet
// filter (tests of the flows alone).
type NATConfig struct {
	// NetNS is the path of the network namespace of the host's stack (where
	// ovs-vswitchd puts the gateway ports); "": the agent's own.
	NetNS string
	// Allowed are the operator's exceptions among the blocked underlay
	// addresses (underlay-allow).
	Allowed []netip.Prefix
	// Underlay are the underlay's prefixes; nil: those of the interface
	// holding TunnelIP, read at start.
	Underlay []netip.Prefix
}

// natKeeper is the agent's part of the packet filter: the Keeper, the last
// state applied, and whose publishes it refused. Owned by the loop, except
// keeper (safe for concurrent use).
type natKeeper struct {
	keeper   *netfilter.Keeper
	underlay []netip.Prefix
	last     *netfilter.State
	// refused: endpoint port -> why one of its publishes is refused.
	refused map[string]string
	netns   string
	quiet   []string // endpoint ports added since the last applyNAT: ARP to quiet
	// gateways are the gateway ports OVSDB showed at the last applyNAT; a
	// new one is applied at once (its forwarding flag), not at the
	// Keeper's next retry.
	gateways []string
	// checked: whether the kernel held a table of an earlier run (left)
	// was asked.
	checked, left bool
}

// newNATKeeper makes the Keeper; nothing changes in the kernel before the
// first Apply.
func (a *Agent) newNATKeeper(c *NATConfig) error {
	k, err := netfilter.New(netfilter.Options{NetNS: c.NetNS, Logger: a.log})
	if err != nil {
		return fmt.Errorf("packet filter: %w", err)
	}
	n := &natKeeper{keeper: k, underlay: c.Underlay, refused: map[string]string{}, netns: c.NetNS}
	if n.underlay == nil && a.cfg.TunnelIP.IsValid() {
		if n.underlay, err = netfilter.UnderlayPrefixes(c.NetNS, a.cfg.TunnelIP); err != nil {
			a.log.Warn("packet filter: the underlay's prefix is not known: a NAT network overlapping it is not refused", "tunnel_ip", a.cfg.TunnelIP, "err", err)
		}
	}
	a.nat = n
	return nil
}

// NAT returns the packet filter for metrics.NewNATCollector (nil without
// Config.NAT). Before a gateway is served it holds nothing and is in sync.
func (a *Agent) NAT() *NATSource {
	if a.nat == nil {
		return nil
	}
	return &NATSource{k: a.nat.keeper}
}

// NATSource is the packet filter as metrics read it (metrics.NATSource).
type NATSource struct{ k *netfilter.Keeper }

// Counters returns the rules' counters.
func (s *NATSource) Counters() (netfilter.Counters, error) { return s.k.Counters() }

// Status returns the keeper's status; with nothing to keep (no gateway
// served yet) it is in sync.
func (s *NATSource) Status() netfilter.Status {
	st := s.k.Status()
	if s.k.Ruleset() == nil {
		st.InSync = true
	}
	return st
}

// runNAT repairs the packet filter until ctx ends. The rules stay in the
// kernel afterwards: established connections and published ports keep
// working across an agent restart.
func (a *Agent) runNAT(ctx context.Context) {
	_ = a.nat.keeper.Run(ctx)
	_ = a.nat.keeper.Close()
}

// applyNAT brings the packet filter to the model's state if it changed
// since the last apply. Refused items are logged and counted once; a
// refused publish is kept in refused for the endpoint's status.
func (a *Agent) applyNAT(view cluster.View) {
	n := a.nat
	if n == nil {
		return
	}
	if len(n.quiet) > 0 {
		changed, err := netfilter.QuietPorts(n.netns, n.quiet)
		if err != nil {
			a.log.Warn("packet filter: could not stop the host answering ARP on endpoint ports", "err", err)
		}
		if len(changed) > 0 {
			a.log.Debug("host ARP off on endpoint ports (arp_ignore=8)", "ports", changed)
		}
		n.quiet = n.quiet[:0]
	}
	var eps []endpoint.Endpoint
	var gws []string // gateway ports OVSDB shows: their forwarding flag is set once they appear
	for _, ep := range a.reg.Active() {
		if ep.Gateway {
			gws = append(gws, ep.Port)
		}
		if len(ep.Ports) > 0 && a.model.refusal(ep.Port) == "" {
			eps = append(eps, ep)
		}
	}
	slices.Sort(gws)
	gwsChanged := !slices.Equal(gws, n.gateways)
	n.gateways = gws
	s := natState(natInput{View: view, Gateways: a.gatewayPorts(view), Endpoints: eps, TunnelIP: a.cfg.TunnelIP,
		Underlay: n.underlay, Allowed: a.cfg.NAT.Allowed})
	switch {
	case n.last == nil && len(s.Networks) == 0 && !n.tableLeft(a):
		// No gateway here (yet): no table, and no forwarding turned on
		// for the uplinks, until a network is served. A table left by an
		// earlier run is applied to (its networks' rules go).
		return
	case n.last != nil && reflect.DeepEqual(*n.last, s) && !gwsChanged:
		return
	}
	n.last = &s
	fresh, err := n.keeper.Apply(s)
	if err != nil {
		a.log.Warn("packet filter: not in the kernel yet; retrying", "err", err)
	}
	owners := publishOwners(s)
	for _, r := range fresh {
		var ref *netfilter.Refusal
		if !errors.As(r, &ref) {
			continue
		}
		kind := "nat"
		if ref.Kind == "publish" {
			kind = "publish"
		}
		a.reject(kind, fmt.Errorf("%w (endpoint %s keeps its connectivity)", ref, owners[ref.Item]))
	}
	refused := map[string]string{}
	for _, r := range n.keeper.Refused() {
		var ref *netfilter.Refusal
		if errors.As(r, &ref) && ref.Kind == "publish" {
			if port := owners[ref.Item]; port != "" && refused[port] == "" {
				refused[port] = ref.Error()
			}
		}
	}
	for port := range n.refused {
		if refused[port] != n.refused[port] {
			a.marks.touch(port)
		}
	}
	for port := range refused {
		if refused[port] != n.refused[port] {
			a.marks.touch(port)
		}
	}
	n.refused = refused
}

// publishRefusal says why a publish of the endpoint on port is refused ("":
// none is).
func (a *Agent) publishRefusal(port string) string {
	if a.nat == nil {
		return ""
	}
	return a.nat.refused[port]
}

// quietPort notes a local endpoint port whose host end must not answer
// ARP for the host's addresses (netfilter.QuietPorts), done at the next
// applyNAT.
func (a *Agent) quietPort(ep endpoint.Endpoint) {
	if a.nat != nil && !ep.Gateway {
		a.nat.quiet = append(a.nat.quiet, ep.Port)
	}
}

// tableLeft reports whether an earlier run's table is in the kernel
// (asked once, at the first applyNAT).
func (n *natKeeper) tableLeft(a *Agent) bool {
	if !n.checked {
		n.checked = true
		ok, err := n.keeper.Present()
		if err != nil {
			a.log.Warn("packet filter: cannot read the kernel's tables", "err", err)
		}
		n.left = ok
	}
	return n.left
}
