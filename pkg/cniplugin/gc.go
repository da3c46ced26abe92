package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// GC implements GC: it removes the plugin's ports in the configuration's
// network whose container and interface are not in
// cni.dev/valid-attachments and gives their addresses back, then releases
// the agent's allocations for the plugin's interfaces that are not in the
// list either (ADDs killed between their allocation and their port), or
// forwards GC to the delegated IPAM plugin. It goes on after an error and
// reports them all (spec 1.1). The runtime runs no ADD or DEL meanwhile
// (spec), so an allocation without a port is no ADD in progress.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := p.ctx(nil)
	defer cancel()
	valid := map[types.GCAttachment]bool{}
	for _, a := range c.ValidAttachments {
		valid[a] = true
	}
	portErr := p.gcPorts(ctx, c, valid)
	var ipamErr error
	if c.Delegated() {
		if err := invoke.DelegateGC(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
			ipamErr = fmt.Errorf("IPAM plugin %s: GC: %w", c.IPAM.Type, err)
		}
	} else {
		ipamErr = p.gcAllocations(ctx, c, valid)
	}
	switch {
	case ipamErr == nil:
		return portErr // nil, or a *types.Error
	case portErr == nil && errors.Is(ipamErr, agentapi.ErrUnreachable):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("GC: the agent is not reachable on %s: stale ports are removed, allocations without a port expire", c.AgentSocket), ipamErr.Error())
	}
	return types.NewError(types.ErrInternal, "GC: cleaning up stale ports and addresses", errors.Join(portErr, ipamErr).Error())
}

// gcPorts removes the plugin's ports in the network that are not valid.
func (p *Plugin) gcPorts(ctx context.Context, c *NetConf, valid map[types.GCAttachment]bool) error {
	ports, closePorts, err := p.open(ctx, c)
	if err != nil {
		return err
	}
	defer closePorts()
	list, err := ports.Ports(ctx)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "listing the bridge's ports", err.Error())
	}
	at := p.attacher(ports, nil)
	var errs []error
	for _, pt := range list {
		x := pt.ExternalIDs
		id, ifname := x[endpoint.KeyContainerID], x[endpoint.KeyContainerIface]
		if x[endpoint.KeyOwner] != Owner || x[endpoint.KeyNetwork] != c.Network || valid[types.GCAttachment{ContainerID: id, IfName: ifname}] {
			continue
		}
		if err := at.Detach(ctx, id, ifname); err != nil && !errors.Is(err, attach.ErrNotAttached) {
			errs = append(errs, err)
			continue
		}
		p.log().Info("gc: removed", "port", pt.Name, "container", id, "ifname", ifname)
		if !c.Delegated() {
			ip, _ := netip.ParseAddr(x[endpoint.KeyIP])
			_ = p.release(ctx, c, &skel.CmdArgs{ContainerID: id, IfName: ifname}, ip)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(types.ErrInternal, "GC: removing stale ports", err.Error())
	}
	return nil
}

// gcAllocations releases the agent's allocations in the network owned by
// the plugin's interfaces (attach.Owner(Owner, container, ifname)) that
// are not valid.
func (p *Plugin) gcAllocations(ctx context.Context, c *NetConf, valid map[types.GCAttachment]bool) error {
	agent := agentapi.NewClient(c.AgentSocket)
	actx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	l, err := agent.Allocations(actx, c.Network, Owner+":")
	if err != nil {
		return fmt.Errorf("listing the agent's allocations in network %s: %w", c.Network, err)
	}
	var errs []error
	for _, a := range l {
		id, ifname, ok := parseOwner(a.Owner)
		if !ok {
			p.log().Warn("gc: an allocation's owner is not the plugin's kind: left alone", "owner", a.Owner, "ip", a.IP)
			continue
		}
		if valid[types.GCAttachment{ContainerID: id, IfName: ifname}] {
			continue
		}
		if err := agent.Release(actx, agentapi.ReleaseRequest{Network: c.Network, IP: a.IP, Owner: a.Owner}); err != nil {
			errs = append(errs, fmt.Errorf("releasing %s of %s: %w", a.IP, a.Owner, err))
			continue
		}
		p.log().Info("gc: released address", "ip", a.IP, "container", id, "ifname", ifname, "port", a.Port)
	}
	return errors.Join(errs...)
}

// parseOwner splits an owner "cni:<container id>/<ifname>" (an interface
// name holds no '/').
func parseOwner(owner string) (containerID, ifname string, ok bool) {
	rest, ok := strings.CutPrefix(owner, Owner+":")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
