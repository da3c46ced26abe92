package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// port finds the plugin's port of (container, ifname).
func port(ports []attach.Port, containerID, ifname string) (attach.Port, bool) {
	for _, p := range ports {
		x := p.ExternalIDs
		if x[endpoint.KeyOwner] == Owner && x[endpoint.KeyContainerID] == containerID && x[endpoint.KeyContainerIface] == ifname {
			return p, true
		}
	}
	return attach.Port{}, false
}

// Del implements DEL: it removes the port and the veth of the interface
// and gives its address back. What is gone already (the namespace, the
// veth, the port, the allocation) is not an error; another container's
// port is never touched (ports are found by owner, container id and
// interface name).
func (p *Plugin) Del(args *skel.CmdArgs) error {
	c, err := parse(args, false)
	if err != nil {
		return err
	}
	ctx, cancel := p.ctx(nil)
	defer cancel()
	ports, closePorts, pt, ok, err := p.ownPort(ctx, c, args)
	if err != nil {
		return err
	}
	defer closePorts()
	var ip netip.Addr
	if ok {
		ip, _ = netip.ParseAddr(pt.ExternalIDs[endpoint.KeyIP])
	}
	at := p.attacher(ports, nil)
	if err := at.Detach(ctx, args.ContainerID, args.IfName); err != nil && !errors.Is(err, attach.ErrNotAttached) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("removing %s of %s", args.IfName, args.ContainerID), err.Error())
	}
	if ok {
		p.log().Info("deleted", "container", args.ContainerID, "ifname", args.IfName, "port", pt.Name, "ip", ip)
	}
	return p.release(ctx, c, args, ip)
}

// ownPort opens the port writer on the container's port alone and finds
// that port (ok false: there is none). The caller closes the writer.
func (p *Plugin) ownPort(ctx context.Context, c *NetConf, args *skel.CmdArgs) (Ports, func(), attach.Port, bool, error) {
	ports, closePorts, err := p.open(ctx, c, attach.HostIfName(args.ContainerID, args.IfName))
	if err != nil {
		return nil, nil, attach.Port{}, false, err
	}
	list, err := ports.Ports(ctx)
	if err != nil {
		closePorts()
		return nil, nil, attach.Port{}, false, types.NewError(types.ErrIOFailure, "listing the bridge's ports", err.Error())
	}
	pt, ok := port(list, args.ContainerID, args.IfName)
	return ports, closePorts, pt, ok, nil
}

// release gives the interface's address back: to the delegated IPAM
// plugin, else to the agent: ip (the port's), or without a port whatever
// the interface's owner holds (an ADD killed between its allocation and
// its port). Nothing held, or the agent down, is no error: removing the
// port frees the address once the agent sees it, and an allocation that
// never became a port expires (the agent's TTL, the last resort).
func (p *Plugin) release(ctx context.Context, c *NetConf, args *skel.CmdArgs, ip netip.Addr) error {
	if c.Delegated() {
		if err := invoke.DelegateDel(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %s: DEL failed", c.IPAM.Type), err.Error())
		}
		return nil
	}
	alloc := &attach.AgentAllocator{Client: agentapi.NewClient(c.AgentSocket), Kind: Owner}
	actx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	err := alloc.Release(actx, attach.AllocRequest{Network: c.Network, ContainerID: args.ContainerID, IfName: args.IfName}, ip)
	if err != nil {
		p.log().Warn("releasing the address with the agent failed (a removed port frees it once the agent sees it, an allocation without a port expires)",
			"container", args.ContainerID, "ifname", args.IfName, "ip", ip, "err", err)
	}
	return nil
}

// Check implements CHECK: the port must exist in the network with the
// agent's installed mark for its address (its flows are in OVS), the
// container interface must hold the address, and the default route must
// go via the gateway the previous result gave (or the agent's).
func (p *Plugin) Check(args *skel.CmdArgs) error {
	c, err := parse(args, true)
	if err != nil {
		return err
	}
	ctx, cancel := p.ctx(nil)
	defer cancel()
	if err := parsePrev(c); err != nil {
		return err
	}
	_, closePorts, pt, ok, err := p.ownPort(ctx, c, args)
	if err != nil {
		return err
	}
	defer closePorts()
	if !ok {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: no OVS port on bridge %s for interface %s of container %s (deleted? DEL and ADD again)",
			c.Bridge, args.IfName, args.ContainerID), "")
	}
	x := pt.ExternalIDs
	if x[endpoint.KeyNetwork] != c.Network {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: port %s is in network %q, not %q", pt.Name, x[endpoint.KeyNetwork], c.Network), "")
	}
	ip, err := netip.ParseAddr(x[endpoint.KeyIP])
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: port %s has no valid %s", pt.Name, endpoint.KeyIP), "")
	}
	if e := x[endpoint.KeyError]; e != "" {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: the agent refuses port %s: %s", pt.Name, e), "")
	}
	if !endpoint.HeldAddress(x) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: the agent's flows for port %s (%s) are not installed (is ofctl-agent running?)", pt.Name, ip), "")
	}
	if err := p.checkFlows(ctx, c, pt.Name, ip); err != nil {
		return err
	}
	ns, err := attach.OpenNetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CHECK: cannot open CNI_NETNS %s", args.Netns), err.Error())
	}
	defer ns.Close()
	st, err := p.links().Inspect(ns, args.IfName)
	if err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: interface %s in %s: %v", args.IfName, args.Netns, err), "")
	}
	if !slices.ContainsFunc(st.Addrs, func(a netip.Prefix) bool { return a.Addr() == ip }) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: interface %s has no address %s (has %v)", args.IfName, ip, st.Addrs), "")
	}
	if !st.Up {
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: interface %s is down", args.IfName), "")
	}
	if gw := expectedGateway(c); gw.IsValid() && st.Gateway != gw {
		have := "none"
		if st.Gateway.IsValid() {
			have = st.Gateway.String()
		}
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: the default route of %s is via %s, not via the gateway %s", args.IfName, have, gw), "")
	}
	if c.Delegated() {
		if err := invoke.DelegateCheck(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: IPAM plugin %s", c.IPAM.Type), err.Error())
		}
	}
	return nil
}

// checkFlows reads the endpoint's flows from the bridge (OpenFlow flow
// stats for the endpoint's cookie, pkg/pipeline): none is an error.
func (p *Plugin) checkFlows(ctx context.Context, c *NetConf, port string, ip netip.Addr) error {
	count := p.CountFlows
	if count == nil {
		count = countFlows
	}
	n, err := count(ctx, c.OpenFlow, pipeline.Endpoint{Port: port}.Cookie())
	switch {
	case err != nil:
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("CHECK: reading the flows of port %s from %s (conflist key openflow)", port, c.OpenFlow), err.Error())
	case n == 0:
		return types.NewError(types.ErrInternal, fmt.Sprintf("CHECK: bridge %s has no flows for port %s (%s): the agent's flows are missing (is ofctl-agent running?)", c.Bridge, port, ip), "")
	}
	return nil
}

// countFlows counts the flows of one object cookie over OpenFlow.
func countFlows(ctx context.Context, addr string, cookie uint64) (int, error) {
	conn, err := openflow.Dial(ctx, openflow.Config{Addr: addr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	flows, err := conn.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables, Cookie: cookie, CookieMask: pipeline.ObjectMask, RawOnly: true})
	return len(flows), err
}

// parsePrev decodes the previous result CHECK is given.
func parsePrev(c *NetConf) error {
	if c.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "prevResult", err.Error())
	}
	return nil
}

// expectedGateway is the default route's gateway in the previous result.
func expectedGateway(c *NetConf) netip.Addr {
	r, ok := c.PrevResult.(*current.Result)
	if !ok || r == nil {
		return netip.Addr{}
	}
	for _, rt := range r.Routes {
		if ones, _ := rt.Dst.Mask.Size(); ones == 0 && rt.GW != nil {
			if a, ok := netip.AddrFromSlice(rt.GW.To4()); ok {
				return a
			}
		}
	}
	return netip.Addr{}
}

// errPluginNotAvailable is spec 1.1's STATUS code 50: the plugin cannot
// service ADD requests.
const errPluginNotAvailable uint = 50

// Status implements STATUS: an error while the agent is not reachable or
// its pipeline is not in OVS, so that runtimes hold new containers.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := p.ctx(nil)
	defer cancel()
	st, err := agentapi.NewClient(c.AgentSocket).Status(ctx)
	if err != nil {
		return types.NewError(errPluginNotAvailable, fmt.Sprintf("the agent is not reachable on %s: is ofctl-agent running?", c.AgentSocket), err.Error())
	}
	if !st.Ready {
		return types.NewError(errPluginNotAvailable, "the agent is not ready: "+st.Reason, "")
	}
	return nil
}
