package agent

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// DNS is the resolver the agent serves on its gateways (resolver.Server):
// one network per gateway of this host, at the gateway's address, for
// queries from the network's subnet (docs/dns.md).
type DNS interface {
	SetNetwork(name string, gateway netip.Addr, subnet netip.Prefix) error
	RemoveNetwork(name string)
	Domain() string // the cluster domain, e.g. "ofctl.internal."
}

// ResolverOptions are the resolv.conf options the agent advises: one
// second per attempt is plenty for a resolver on the gateway, three
// attempts cover an upstream that fails over (docs/dns.md).
var ResolverOptions = []string{"timeout:1", "attempts:3"}

// dnsNet is what one network's resolver serves.
type dnsNet struct {
	gateway netip.Addr
	subnet  netip.Prefix
}

// dnsState is what Config.DNS was given (loop-owned).
type dnsState struct {
	served map[string]dnsNet
	failed bool // a SetNetwork failed: applyDNS retries at the next drift check
	// problem is the last failure reported per network: a retry that fails
	// the same way is not reported again.
	problem map[string]string
	// public is served's gateways, for the local API's readers.
	public atomic.Pointer[map[string]netip.Addr]
}

// dnsFor is what network's containers put in their resolv.conf, or nil
// when the agent serves no resolver for it.
func (a *Agent) dnsFor(network string) *agentapi.DNS {
	m := a.dns.public.Load()
	if a.cfg.DNS == nil || m == nil {
		return nil
	}
	gw, ok := (*m)[network]
	if !ok {
		return nil
	}
	d := &agentapi.DNS{Nameservers: []netip.Addr{gw}, Options: slices.Clone(ResolverOptions)}
	if endpoint.ValidateName(network) == nil { // else the network has no zone of its own
		d.Search = []string{network + "." + strings.TrimSuffix(a.cfg.DNS.Domain(), ".")}
	}
	return d
}

// applyDNS serves every network that has a gateway on this host in view
// v, at the gateway's address, and no other. A network whose sockets
// cannot be opened is reported (kind "dns") and retried.
func (a *Agent) applyDNS(v cluster.View) {
	if a.cfg.DNS != nil {
		a.serveDNS(v, a.hostGateways(v))
	}
}

// serveDNS serves the networks of v that have a gateway in gws.
func (a *Agent) serveDNS(v cluster.View, gws map[string]netip.Addr) {
	if a.dns.served == nil {
		a.dns.served, a.dns.problem = map[string]dnsNet{}, map[string]string{}
	}
	want := map[string]dnsNet{}
	for name, gw := range gws {
		if n, ok := v.Network(name); ok && n.Subnet.Contains(gw) {
			want[name] = dnsNet{gw, n.Subnet}
		}
	}
	for name := range maps.Clone(a.dns.served) {
		if _, ok := want[name]; !ok {
			a.cfg.DNS.RemoveNetwork(name)
			delete(a.dns.served, name)
			a.log.Info("dns: network no longer served", "network", name)
		}
	}
	a.dns.failed = false
	for name, w := range want {
		if a.dns.served[name] == w {
			continue
		}
		if err := a.cfg.DNS.SetNetwork(name, w.gateway, w.subnet); err != nil {
			err = fmt.Errorf("dns: network %s on %s: %w (retried at each drift check)", name, w.gateway, err)
			if a.dns.problem[name] != err.Error() {
				a.dns.problem[name] = err.Error()
				a.reject("dns", err)
			}
			a.dns.failed = true
			continue
		}
		delete(a.dns.problem, name)
		a.dns.served[name] = w
		a.log.Info("dns: serving network", "network", name, "address", w.gateway, "subnet", w.subnet)
	}
	public := make(map[string]netip.Addr, len(a.dns.served))
	for name, w := range a.dns.served {
		public[name] = w.gateway
	}
	a.dns.public.Store(&public)
}
