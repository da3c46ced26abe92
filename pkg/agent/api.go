package agent

import (
	"context"
	"maps"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// The agent's local API (pkg/agentapi): the host's address allocator
// (pkg/ipam, fed by the loop with every port of the bridge and every
// cluster view), its readiness, and what a container's interface needs of
// a network on this host.

// fallbackMTU is the containers' MTU until the agent computes one: room for
// GRE over a 1500-byte underlay (attach's default).
const fallbackMTU = 1450

// hostGateways is this host's gateway address per network of view v
// (gateway.go: the plan is handed to the gateways' keeper too).
func (a *Agent) hostGateways(v cluster.View) map[string]netip.Addr {
	return gateway.Addresses(a.planGateways(v))
}

// gatewayPorts is this host's gateway port name per network of view v
// (gateway.Plan), the networks the packet filter serves. Refused gateways
// are not served (planGateways reports them). Without Config.Gateway (tests
// of the packet filter alone) the plan is the view's.
func (a *Agent) gatewayPorts(v cluster.View) map[string]string {
	gws := a.planGateways(v)
	if a.gw == nil {
		gws, _ = gateway.Plan(v, a.cfg.NodeName, nil)
	}
	m := make(map[string]string, len(gws))
	for _, g := range gws {
		m[g.Network] = g.Port
	}
	return m
}

// containerMTU is the MTU of the containers' interfaces on this host:
// the configured one, else the underlay's minus the tunnel's overhead
// (read atomically: the API's handlers call it).
func (a *Agent) containerMTU() int {
	if a.gw == nil {
		return fallbackMTU
	}
	return int(a.gw.mtu.Load())
}

// Addresses is the host's address allocator: the Docker plugin, served in
// the agent's process, calls it directly.
func (a *Agent) Addresses() *ipam.Allocator { return a.ipam }

// OVSDB is the agent's OVSDB client: the Docker plugin, served in the
// agent's process, adds its ports and waits for their installed marks on it.
func (a *Agent) OVSDB() *ovsdb.Client { return a.db }

// API is the Backend of the agent's local API.
func (a *Agent) API() agentapi.Backend { return apiBackend{a} }

// CountAPIRequest counts one request of the local API
// (agentapi.HandlerOptions.OnRequest): ofctl_agent_api_requests_total.
func (a *Agent) CountAPIRequest(call string, code agentapi.Code) {
	result := string(code)
	if result == "" {
		result = "ok"
	}
	a.mu.Lock()
	a.apiRequests[APIRequest{Call: call, Result: result}]++
	a.mu.Unlock()
}

// APIRequest is a kind of request of the local API: the call and its
// result ("ok" or the error's agentapi.Code).
type APIRequest struct{ Call, Result string }

func (a *Agent) apiCounts() map[APIRequest]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.apiRequests)
}

// allocationExpired logs an allocation the TTL ended (ipam.Config.OnExpire):
// a client died between its allocation and its port, and neither it nor a
// clean-up (CNI DEL or GC, detach) gave the address back.
func (a *Agent) allocationExpired(h ipam.Held) {
	a.log.Warn("address allocation expired without a port (its client died before adding the port, and nothing released it)",
		"network", h.Network, "ip", h.IP, "owner", h.Owner)
}

type apiBackend struct{ a *Agent }

func (b apiBackend) Status() agentapi.Status {
	if !b.a.ready.Load() {
		return agentapi.Status{Reason: "the pipeline is not (yet) in OVS (see the agent's log and /readyz)"}
	}
	return agentapi.Status{Ready: true}
}

func (b apiBackend) Network(name string) (agentapi.Network, error) {
	subnet, gw, err := b.a.ipam.Network(name)
	if err != nil {
		return agentapi.Network{}, err
	}
	return agentapi.Network{Name: name, Subnet: subnet, Gateway: gw, MTU: b.a.containerMTU(), DNS: b.a.dnsFor(name)}, nil
}

func (b apiBackend) Allocate(ctx context.Context, r agentapi.AllocateRequest) (agentapi.Allocation, error) {
	b.a.loadForAllocation(ctx, r.Network) // the other hosts' claims there, with a scoped source
	l, err := b.a.ipam.Allocate(r.Network, r.Owner, r.IP)
	if err != nil {
		return agentapi.Allocation{}, err
	}
	b.a.log.Debug("address allocated", "network", l.Network, "ip", l.Address, "owner", r.Owner)
	return agentapi.Allocation{Network: l.Network, Address: l.Address, Gateway: l.Gateway, MTU: b.a.containerMTU(),
		MAC: arp.DerivedMAC(l.Address.Addr()).String()}, nil
}

func (b apiBackend) Release(_ context.Context, r agentapi.ReleaseRequest) error {
	if r.IP.IsValid() {
		b.a.ipam.Release(r.Network, r.Owner, r.IP)
		return nil
	}
	if ip, ok := b.a.ipam.ReleaseOwner(r.Network, r.Owner); ok {
		b.a.log.Debug("address released by owner", "network", r.Network, "ip", ip, "owner", r.Owner)
	}
	return nil
}

func (b apiBackend) Allocations(_ context.Context, network, ownerPrefix string) ([]agentapi.Allocated, error) {
	held := b.a.ipam.Allocations(network, ownerPrefix)
	l := make([]agentapi.Allocated, len(held))
	for i, h := range held {
		l[i] = agentapi.Allocated{Network: h.Network, IP: h.IP, Owner: h.Owner, Port: h.Port, Expires: h.Expires}
	}
	return l, nil
}
