package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// Ports is the bridge as the plugin needs it: attach's Ports and the
// agent's installed signal. *attach.OVSPorts implements it.
type Ports interface {
	attach.Ports
	WaitInstalled(ctx context.Context, port string, ip netip.Addr) error
}

// Plugin runs the CNI commands. Its side effects sit behind OpenPorts
// (OVSDB), the agent's API client and Links (netlink).
type Plugin struct {
	// OpenPorts connects to the configuration's OVSDB and bridge, with a
	// view of the ports named only (all when empty); close disconnects.
	// Nil: OpenOVSPorts, and ADD adds its port over a lean connection
	// (addPorts, ovsdb.Direct), opening the view only when it must read
	// the bridge; set (tests), ADD uses the view alone.
	OpenPorts func(ctx context.Context, c *NetConf, only []string) (p Ports, close func(), err error)
	Links     attach.Links // nil: attach.Netlink{}
	// CountFlows counts the bridge's flows of a cookie (CHECK); nil:
	// OpenFlow flow stats on the conflist's openflow socket.
	CountFlows func(ctx context.Context, addr string, cookie uint64) (int, error)
	Log        *slog.Logger
	// Timeout bounds one command besides ADD's install wait; 0: 30s.
	Timeout time.Duration
}

// Funcs are the plugin's commands for skel.PluginMainFuncs.
// Each failure is also logged, on Log and in the configuration's logFile
// (log.go).
func (p *Plugin) Funcs() skel.CNIFuncs {
	logged := func(cmd string, f func(*Plugin, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			q, closeLog := p.forCommand(cmd, args.StdinData)
			defer closeLog()
			err := f(q, args)
			if err != nil {
				q.log().Warn("ofctl-cni "+cmd+" failed", "container", args.ContainerID, "ifname", args.IfName, "netns", args.Netns, "err", err)
			}
			return err
		}
	}
	return skel.CNIFuncs{Add: logged("ADD", (*Plugin).Add), Del: logged("DEL", (*Plugin).Del), Check: logged("CHECK", (*Plugin).Check),
		GC: logged("GC", (*Plugin).GC), Status: logged("STATUS", (*Plugin).Status)}
}

func (p *Plugin) ctx(c *NetConf) (context.Context, context.CancelFunc) {
	t := p.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	if c != nil {
		t += c.installTimeout
	}
	return context.WithTimeout(context.Background(), t)
}

func (p *Plugin) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

func (p *Plugin) links() attach.Links {
	if p.Links == nil {
		return attach.Netlink{}
	}
	return p.Links
}

func (p *Plugin) open(ctx context.Context, c *NetConf, only ...string) (Ports, func(), error) {
	open := p.OpenPorts
	if open == nil {
		open = OpenOVSPorts
	}
	ports, closePorts, err := open(ctx, c, only)
	if err != nil {
		return nil, nil, ovsdbError(c, err)
	}
	return ports, closePorts, nil
}

// ovsdbError is the CNI error for an OVSDB that cannot be used.
func ovsdbError(c *NetConf, err error) error {
	return types.NewError(types.ErrTryAgainLater,
		fmt.Sprintf("cannot reach Open vSwitch at %s, bridge %s: is ovs-vswitchd running and the bridge made by the agent?", c.OVSDB, c.Bridge), err.Error())
}

// OpenOVSPorts connects to OVSDB with pkg/ovsdb and waits until the
// bridge is seen. With only, the client reads just those ports (one
// container's: ADD, DEL and CHECK take the same time on a bridge of 10 or
// 10,000 ports); without, all of them (GC).
func OpenOVSPorts(ctx context.Context, c *NetConf, only []string) (Ports, func(), error) {
	cl, err := ovsdb.New(ovsdb.Config{Endpoint: c.OVSDB, Bridge: ovsdb.BridgeConfig{Name: c.Bridge},
		Logger: slog.New(slog.DiscardHandler), ProbeInterval: -1, OnlyPorts: only})
	if err != nil {
		return nil, nil, err
	}
	stop := cl.Start(ctx)
	ports := attach.NewOVSPorts(cl)
	ports.Poll = 2 * time.Millisecond // a runtime waits on every ADD: look often, it is cheap
	if err := ports.Ready(ctx, 2*time.Second); err != nil {
		stop()
		return nil, nil, err
	}
	return ports, stop, nil
}

func (p *Plugin) attacher(ports Ports, alloc attach.Allocator) *attach.Attacher {
	return &attach.Attacher{Ports: ports, Links: p.Links, Alloc: alloc, Owner: Owner, Log: p.log()}
}

// parse reads the configuration and the mandatory CNI_* values.
func parse(args *skel.CmdArgs, needNetNS bool) (*NetConf, error) {
	c, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, err
	}
	if args.ContainerID == "" {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID is empty", "")
	}
	if needNetNS && args.Netns == "" {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty", "")
	}
	if err := attach.ValidIfName(args.IfName); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME: "+err.Error(), "")
	}
	return c, nil
}

// Add implements ADD.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	c, err := parse(args, true)
	if err != nil {
		return err
	}
	ctx, cancel := p.ctx(c)
	defer cancel()
	start := time.Now()
	phase := func(name string) { p.log().Debug("add: "+name, "elapsed", time.Since(start)) }
	ns, err := attach.OpenNetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("cannot open CNI_NETNS %s", args.Netns), err.Error())
	}
	defer ns.Close()
	host := attach.HostIfName(args.ContainerID, args.IfName)
	var lean *addPorts
	if p.OpenPorts == nil { // real OVSDB: dial while the agent answers
		lean = p.dialAdd(ctx, c, host)
		defer lean.close()
	}
	agent := agentapi.NewClient(c.AgentSocket)
	actx, acancel := context.WithTimeout(ctx, agentCallTimeout)
	n, err := agent.Network(actx, c.Network)
	acancel()
	if err != nil {
		return agentError(c, err)
	}
	o := attach.Options{Network: c.Network, Subnet: n.Subnet, IfName: args.IfName, MTU: n.MTU, Gateway: n.Gateway,
		TxOffload: attach.TxOffload(c.TxOffload)}
	if c.MTU != 0 {
		o.MTU = c.MTU
	}
	if name := PodName(args.Args); name != "" && endpoint.ValidateName(name) == nil {
		o.Name = name
	}
	var alloc attach.Allocator = &attach.AgentAllocator{Client: agent, Kind: Owner}
	var undoIPAM func()
	if c.Delegated() {
		alloc = nil
		if o.IP, o.Gateway, undoIPAM, err = delegateAdd(ctx, c, args.StdinData, n.Gateway); err != nil {
			return err
		}
	}
	fail := func(err error) error {
		if undoIPAM != nil {
			undoIPAM()
		}
		return err
	}
	phase("network from the agent")
	// OVS is asked about this interface's port alone (the lean connection,
	// or a view of that port): the agent's allocator (or, for a delegated
	// address, the agent's own conflict check) keeps addresses apart, not a
	// scan of the bridge.
	var ports Ports = lean
	if lean == nil {
		view, closeView, err := p.open(ctx, c, host)
		if err != nil {
			return fail(err)
		}
		defer closeView()
		ports = view
	}
	at := p.attacher(ports, alloc)
	res, err := at.Attach(ctx, attach.Container{ID: args.ContainerID, NetNS: ns}, o)
	if err != nil {
		if lean != nil && lean.dialFailed() != nil {
			return fail(ovsdbError(c, lean.dialFailed()))
		}
		return fail(attachError(c, args, err))
	}
	phase("attached")
	wctx, wcancel := context.WithTimeout(ctx, c.installTimeout)
	defer wcancel()
	if err := ports.WaitInstalled(wctx, res.Port, res.Options.IP.Addr()); err != nil {
		err = installError(c, res, err, wctx.Err() != nil)
		if res.Created {
			err = undo(ctx, at, res, err)
		}
		return fail(err)
	}
	phase("installed")
	p.log().Info("added", "container", args.ContainerID, "ifname", args.IfName, "port", res.Port, "ip", res.Options.IP)
	return types.PrintResult(result(c, args, res, n.DNS), c.CNIVersion)
}

// result is ADD's answer.
func result(c *NetConf, args *skel.CmdArgs, res attach.Attachment, dns *agentapi.DNS) *current.Result {
	o := res.Options
	zero := 0
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: o.IfName, Mac: o.MAC.String(), Mtu: o.MTU, Sandbox: args.Netns}},
		IPs:        []*current.IPConfig{{Interface: &zero, Address: net.IPNet{IP: o.IP.Addr().AsSlice(), Mask: net.CIDRMask(o.IP.Bits(), 32)}}},
	}
	if o.Gateway.IsValid() {
		r.IPs[0].Gateway = o.Gateway.AsSlice()
		r.Routes = []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: o.Gateway.AsSlice()}}
	}
	if dns != nil && c.DNS.IsEmpty() {
		for _, s := range dns.Nameservers {
			r.DNS.Nameservers = append(r.DNS.Nameservers, s.String())
		}
		r.DNS.Search, r.DNS.Options = dns.Search, dns.Options
		if len(dns.Search) > 0 {
			r.DNS.Domain = dns.Search[0]
		}
	} else {
		r.DNS = c.DNS
	}
	return r
}

// delegateAdd runs the ipam section's plugin and returns its IPv4 address
// and the gateway (gw, the agent's, else the plugin's), and how to give
// them back.
func delegateAdd(ctx context.Context, c *NetConf, conf []byte, gw netip.Addr) (netip.Prefix, netip.Addr, func(), error) {
	r, err := invoke.DelegateAdd(ctx, c.IPAM.Type, conf, nil)
	if err != nil {
		return netip.Prefix{}, gw, nil, types.NewError(types.ErrInternal,
			fmt.Sprintf("IPAM plugin %s failed", c.IPAM.Type), err.Error())
	}
	undo := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = invoke.DelegateDel(dctx, c.IPAM.Type, conf, nil)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		undo()
		return netip.Prefix{}, gw, nil, types.NewError(types.ErrDecodingFailure,
			fmt.Sprintf("IPAM plugin %s: unusable result", c.IPAM.Type), err.Error())
	}
	for _, ip := range res.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP.To4())
		if !ok || ip.Address.IP.To4() == nil {
			continue
		}
		ones, _ := ip.Address.Mask.Size()
		// The host's gateway is the only one the pipeline routes through:
		// the plugin's own (host-local's default is the subnet's first
		// address) only serves when the agent has none.
		if g, ok := netip.AddrFromSlice(ip.Gateway.To4()); ok && ip.Gateway.To4() != nil && !gw.IsValid() {
			gw = g
		}
		return netip.PrefixFrom(a, ones), gw, undo, nil
	}
	undo()
	return netip.Prefix{}, gw, nil, types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("IPAM plugin %s gave no IPv4 address", c.IPAM.Type), "")
}

// undo removes what ADD made after err and gives the address back.
func undo(ctx context.Context, at *attach.Attacher, res attach.Attachment, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if derr := at.Detach(ctx, res.ContainerID, res.Options.IfName); derr != nil {
		return withDetails(err, fmt.Sprintf("rollback failed: %v (run DEL)", derr))
	}
	if rerr := at.Release(ctx, res); rerr != nil {
		return withDetails(err, fmt.Sprintf("rolled back; giving the address back failed: %v", rerr))
	}
	return withDetails(err, "rolled back")
}

func withDetails(err error, more string) error {
	var te *types.Error
	if errors.As(err, &te) {
		d := te.Details
		if d != "" {
			d += "; "
		}
		return types.NewError(te.Code, te.Msg, d+more)
	}
	return types.NewError(types.ErrInternal, err.Error(), more)
}

// agentCallTimeout bounds a question to the agent (a hung agent must not
// hang the runtime).
const agentCallTimeout = 10 * time.Second

// agentError turns an error of the agent's API into a CNI error.
func agentError(c *NetConf, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("the agent on %s did not answer in time: is ofctl-agent hung or overloaded? (its log)", c.AgentSocket), err.Error())
	case errors.Is(err, agentapi.ErrUnreachable):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("the agent is not reachable on %s: is ofctl-agent running? (agentSocket is its api-socket)", c.AgentSocket), err.Error())
	case errors.Is(err, agentapi.ErrUnknownNetwork):
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("network %s is not in the agent's cluster view (field network or the configuration's name)", c.Network), err.Error())
	case errors.Is(err, agentapi.ErrNotReady), errors.Is(err, agentapi.ErrExhausted):
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("network %s: %v", c.Network, err), "")
	case errors.Is(err, agentapi.ErrAddressTaken), errors.Is(err, agentapi.ErrInvalid):
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("network %s: %v", c.Network, err), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("network %s: asking the agent: %v", c.Network, err), "")
}

// attachError turns an error of attach.Attach into a CNI error.
func attachError(c *NetConf, args *skel.CmdArgs, err error) error {
	var oe *attach.OptionError
	var me *attach.MismatchError
	var de *attach.DuplicateError
	switch {
	case errors.Is(err, agentapi.ErrUnreachable), errors.Is(err, agentapi.ErrUnknownNetwork),
		errors.Is(err, agentapi.ErrNotReady), errors.Is(err, agentapi.ErrExhausted),
		errors.Is(err, agentapi.ErrAddressTaken), errors.Is(err, agentapi.ErrInvalid):
		return agentError(c, err)
	case errors.As(err, &oe), errors.As(err, &de):
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	case errors.As(err, &me), errors.Is(err, attach.ErrInUse):
		return types.NewError(types.ErrInternal, fmt.Sprintf("%s of %s: %v", args.IfName, args.ContainerID, err),
			"an interface of that name exists: DEL it first")
	case errors.Is(err, attach.ErrHostNetNS):
		return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("plumbing %s of %s: %v", args.IfName, args.ContainerID, err), "")
}

func installError(c *NetConf, res attach.Attachment, err error, timedOut bool) error {
	var refused *ovsdb.RefusedError
	switch {
	case errors.As(err, &refused):
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("the agent refuses port %s: %s", res.Port, refused.Reason), "")
	case timedOut:
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("the agent did not install the flows of port %s (%s) within %v: is ofctl-agent running on bridge %s? (its log and 'ofctl-agent dump-flows --endpoint %s' say why)",
				res.Port, res.Options.IP.Addr(), c.installTimeout, c.Bridge, res.Options.IP.Addr()), err.Error())
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("waiting for the agent to install port %s: %v", res.Port, err), "")
}
