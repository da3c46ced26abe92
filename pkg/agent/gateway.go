package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// GatewayConfig turns on this host's gateways (pkg/gateway): one OVS
// internal port per network served here, in the host's namespace, with
// the gateway address. nil in Config: no gateways (tests of the flows
// alone), containers get no gateway and the fallback MTU.
type GatewayConfig struct {
	// NetNS is the path of the network namespace of the host's stack,
	// where ovs-vswitchd creates the internal ports; "": the agent's own.
	NetNS string
	// Addresses are gateway addresses by network for the networks where
	// the cluster view sets none (etcd mode, whose hosts have no ranges).
	Addresses map[string]netip.Addr
	// MTU of the containers' and gateways' interfaces; 0: automatic, the
	// MTU of the interface holding the tunnel address minus
	// gateway.TunnelOverhead (42), read at start and every 10 s.
	MTU int
	// Links keeps the gateways' interfaces; nil: netlink in NetNS.
	Links gateway.Links
	// UnderlayMTU reads the MTU of the interface holding the tunnel
	// address; nil: netlink in NetNS.
	UnderlayMTU func(netip.Addr) (int, string, error)
}

// gateways is the agent's part of the gateways.
type gateways struct {
	cfg      GatewayConfig
	keeper   *gateway.Keeper
	mtu      atomic.Int64
	reported map[string]bool // problems logged and counted (loop-owned)
	plan     atomic.Pointer[[]gateway.Gateway]
}

func (a *Agent) newGateways(c GatewayConfig) error {
	g := &gateways{cfg: c, reported: map[string]bool{}}
	if c.Links == nil || (c.UnderlayMTU == nil && c.MTU == 0) {
		l, err := gateway.NewNetlinkLinks(c.NetNS)
		if err != nil {
			return fmt.Errorf("gateways: %w", err)
		}
		if g.cfg.Links == nil {
			g.cfg.Links = l
		}
		if g.cfg.UnderlayMTU == nil {
			g.cfg.UnderlayMTU = func(ip netip.Addr) (int, string, error) { return l.MTU(ip.AsSlice()) }
		}
	}
	g.keeper = gateway.NewKeeper(gateway.KeeperConfig{Ports: gatewayPorts{a.db}, Links: g.cfg.Links, Log: a.log.With("part", "gateway")})
	g.mtu.Store(int64(a.readMTU(g, true)))
	a.gw = g
	return nil
}

// readMTU is the containers' MTU: the configured one, else the underlay's
// minus the tunnel's overhead, else the fallback.
func (a *Agent) readMTU(g *gateways, first bool) int {
	if g.cfg.MTU > 0 {
		return g.cfg.MTU
	}
	if !a.cfg.TunnelIP.IsValid() {
		return fallbackMTU
	}
	mtu, dev, err := g.cfg.UnderlayMTU(a.cfg.TunnelIP)
	if err != nil {
		if first {
			a.log.Warn("gateway: the underlay's MTU is not known; containers get the fallback MTU", "tunnel_ip", a.cfg.TunnelIP, "mtu", fallbackMTU, "err", err)
		}
		return fallbackMTU
	}
	m := gateway.ContainerMTU(mtu)
	if first {
		a.log.Info("container MTU", "mtu", m, "underlay", dev, "underlay_mtu", mtu)
	}
	return m
}

// runGateways keeps the gateways until ctx ends, and follows the
// underlay's MTU. The ports and addresses stay when it returns: a
// restarted agent finds them as they were.
func (a *Agent) runGateways(ctx context.Context) {
	g := a.gw
	go g.keeper.Run(ctx)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if m := a.readMTU(g, false); int64(m) != g.mtu.Load() {
				a.log.Info("container MTU changed", "from", g.mtu.Load(), "to", m)
				g.mtu.Store(int64(m))
				g.keeper.SetMTU(m)
			}
		}
	}
}

// planGateways computes this host's gateways for view v and hands them to
// the keeper; refused addresses are logged and counted once each. Called
// on the loop (and at start, before it).
func (a *Agent) planGateways(v cluster.View) []gateway.Gateway {
	g := a.gw
	if g == nil {
		return nil
	}
	gws, probs := gateway.Plan(v, a.cfg.NodeName, g.cfg.Addresses)
	now := map[string]bool{}
	for _, p := range probs {
		now[p.Error()] = true
		if !g.reported[p.Error()] {
			a.reject("gateway", fmt.Errorf("%w (the network has no gateway on this host)", p))
		}
	}
	g.reported = now
	g.plan.Store(&gws)
	g.keeper.Set(gws, int(g.mtu.Load()))
	return gws
}

// Gateways returns this host's gateways as last planned, and the keeper's
// counters (metrics, debugging).
func (a *Agent) Gateways() ([]gateway.Gateway, gateway.Stats) {
	if a.gw == nil {
		return nil, gateway.Stats{InSync: true}
	}
	var gws []gateway.Gateway
	if p := a.gw.plan.Load(); p != nil {
		gws = *p
	}
	return gws, a.gw.keeper.Stats()
}

func (a *Agent) gatewayStats() gateway.Stats {
	_, st := a.Gateways()
	return st
}

// gatewayPorts is the OVSDB client as the gateway keeper sees it: the
// interfaces of gateway ports alone (named so, or with the gateway role).
// The keeper checks every 250 ms; copying all 10,000 interfaces of a large
// host each time cost ~0.1 s of CPU per check.
type gatewayPorts struct{ *ovsdb.Client }

func (p gatewayPorts) Interfaces() []ovsdb.Interface {
	return p.InterfacesWhere(isGatewayPort)
}

// isGatewayPort reports whether i is, or claims to be, a gateway's port.
func isGatewayPort(i *ovsdb.Interface) bool {
	return strings.HasPrefix(i.Name, gateway.Prefix) || i.ExternalIDs[endpoint.KeyRole] == endpoint.RoleGateway
}
