package attach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// rollbackTimeout bounds undoing a failed Attach, which runs even when the
// caller's context is done.
const rollbackTimeout = 30 * time.Second

// Attacher attaches containers to the integration bridge.
type Attacher struct {
	Ports  Ports
	Links  Links     // nil: Netlink{}
	Alloc  Allocator // used when Options.IP is zero
	HostNS *NetNS    // namespace of the host end and OVS; nil: the caller's
	Log    *slog.Logger
	// AllowHostNetNS lets Attach plumb into a namespace that is no
	// container's: the host's (PID 1's), the caller's own or HostNS.
	// Without it that is an ErrHostNetNS.
	AllowHostNetNS bool
	// Owner is the external_ids:ofctl-agent.owner of the ports this
	// Attacher makes, and the only ports it finds, checks and removes;
	// "": OwnerAttach. The CNI plugin uses its own.
	Owner string

	// afterStep, when set (tests), runs after each successful step; an
	// error from it fails the attach at that step.
	afterStep func(step string) error
}

// Attachment describes an attached interface.
type Attachment struct {
	Port        string // OVS port = host end of the veth
	ContainerID string
	Options     Options // with defaults, allocated IP and MAC filled in
	Created     bool    // false: it was already attached with these settings
	// TxChecksum is "on" or "off": what TX checksum offload of the
	// container interface was set to (or found at); "": left alone.
	TxChecksum string
}

// step is one side effect of Attach and how to take it back. undo nil means
// a later step's undo (deleting the veth) covers it.
type step struct {
	name       string
	do         func(ctx context.Context) error
	undo       func(ctx context.Context) error
	undoOnFail bool // the step may have taken effect even though it failed
}

// Attach plumbs interface o.IfName of container c into the bridge. It is a
// no-op when that interface is already attached with the same settings, a
// *MismatchError when with others, and a *DuplicateError when another port
// holds the IP or MAC in the network. A failed step (*StepError) undoes the
// ones before it. TX checksum offload of the container interface is set as
// o.TxOffload asks (see TxOffload), on an existing attachment too.
func (a *Attacher) Attach(ctx context.Context, c Container, o Options) (Attachment, error) {
	o, err := o.normalize()
	if err != nil {
		return Attachment{}, err
	}
	if c.ID == "" || c.NetNS == nil {
		return Attachment{}, fmt.Errorf("container needs an id and a namespace (got %q, %v)", c.ID, c.NetNS)
	}
	if !a.AllowHostNetNS {
		if err := checkTarget(c.NetNS, a.HostNS); err != nil {
			return Attachment{}, err
		}
	}
	host := HostIfName(c.ID, o.IfName)
	if pi, ok := a.Ports.(PortInserter); ok {
		if att, done, err := a.attachNew(ctx, pi, c, o, host); done {
			return att, err
		}
	}
	ports, err := a.Ports.Ports(ctx)
	if err != nil {
		return Attachment{}, fmt.Errorf("list bridge ports: %w", err)
	}
	tx, err := a.resolveTx(ctx, o.TxOffload)
	if err != nil {
		return Attachment{}, err
	}
	if p, ok, err := findPort(ports, a.owner(), c.ID, o.IfName, host); err != nil || ok {
		if err != nil {
			return Attachment{}, err
		}
		return a.existing(p, c, o, tx)
	}
	if o.IP.IsValid() { // the bridge's own answer first, before the allocator's
		if err := checkDuplicates(ports, o, host); err != nil {
			return Attachment{}, err
		}
	}
	o, release, err := a.address(ctx, c, o)
	if err != nil {
		return Attachment{}, err
	}
	if err := checkDuplicates(ports, o, host); err != nil {
		return Attachment{}, release(err)
	}
	if err := a.checkFree(c, o, host); err != nil {
		return Attachment{}, release(err)
	}
	if err := a.run(ctx, a.plan(c, o, host, tx)); err != nil {
		return Attachment{}, release(fmt.Errorf("attach %s of %s: %w", o.IfName, c.ID, err))
	}
	o.MAC = o.mac()
	a.log().Info("attached", "port", host, "container", c.ID, "ifname", o.IfName, "ip", o.IP, "mac", o.MAC,
		"network", o.Network, "tx_checksum", tx.String())
	return Attachment{Port: host, ContainerID: c.ID, Options: o, Created: true, TxChecksum: tx.String()}, nil
}

// stepTxOffload is the name of the step that sets the container end's TX
// checksum offload.
const stepTxOffload = "set container tx checksum offload"

// plan lists Attach's steps in order.
func (a *Attacher) plan(c Container, o Options, host string, tx txAction) []step {
	l := a.links()
	deleteVeth := func(context.Context) error { return ignoreNotFound(l.DeleteVeth(a.HostNS, host)) }
	cfg := LinkConfig{Name: o.IfName, MAC: o.mac(), MTU: o.MTU, Addr: o.IP}
	steps := []step{
		// The container end is made in the container's namespace with its
		// name, MAC and MTU: nothing moves, nothing is renamed.
		{name: "create veth", do: func(context.Context) error { return l.AddVeth(a.HostNS, host, c.NetNS, cfg) }, undo: deleteVeth},
		{name: "configure container interface", do: func(context.Context) error { return l.Configure(c.NetNS, o.IfName, cfg) }},
	}
	if tx.set {
		steps = append(steps, step{name: stepTxOffload, do: func(context.Context) error {
			return l.SetTxChecksum(c.NetNS, o.IfName, tx.on)
		}})
	}
	if o.Gateway.IsValid() {
		steps = append(steps, step{name: "add default route", do: func(context.Context) error {
			return l.AddDefaultRoute(c.NetNS, o.IfName, o.Gateway)
		}})
	}
	return append(steps,
		step{name: "set host end up", do: func(context.Context) error { return l.SetUp(a.HostNS, host) }},
		step{name: "check container interface", do: func(context.Context) error {
			_, err := l.Inspect(c.NetNS, o.IfName)
			return err
		}},
		step{name: "add OVS port", undoOnFail: true,
			do:   func(ctx context.Context) error { return a.Ports.AddPort(ctx, host, externalIDs(a.owner(), c, o)) },
			undo: func(ctx context.Context) error { return a.Ports.DeletePort(ctx, host) }},
	)
}

// run does the steps in order; on the first failure it undoes the done ones
// in reverse order.
func (a *Attacher) run(ctx context.Context, steps []step) error {
	var done []step
	for _, s := range steps {
		err := ctx.Err()
		if err == nil {
			err = s.do(ctx)
			if err == nil || s.undoOnFail {
				done = append(done, s)
			}
		}
		if err == nil && a.afterStep != nil {
			err = a.afterStep(s.name)
		}
		if err != nil {
			a.log().Debug("attach step failed, rolling back", "step", s.name, "err", err)
			return &StepError{Step: s.name, Err: err, Rollback: a.rollback(ctx, done)}
		}
		a.log().Debug("attach step done", "step", s.name)
	}
	return nil
}

func (a *Attacher) rollback(ctx context.Context, done []step) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		if u := done[i].undo; u != nil {
			if err := u(ctx); err != nil {
				errs = append(errs, fmt.Errorf("undo %s: %w", done[i].name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// findPort finds the port of (container, ifname): by its container keys or
// by its derived name. A match that Attach did not make is an error.
func findPort(ports []Port, owner, id, ifname, host string) (Port, bool, error) {
	for _, p := range ports {
		byKeys := p.containerID() == id && p.containerIface() == ifname
		if !byKeys && p.Name != host {
			continue
		}
		switch {
		case p.owner() != owner:
			return p, false, fmt.Errorf("port %s for %s in %s exists but was not made by %s (owner %q): %w", p.Name, ifname, id, owner, p.owner(), ErrInUse)
		case !byKeys:
			return p, false, fmt.Errorf("port %s belongs to %s in %s, not %s in %s: %w", p.Name, p.containerIface(), p.containerID(), ifname, id, ErrInUse)
		}
		return p, true, nil
	}
	return Port{}, false, nil
}

// address holds the interface's address with the allocator (o.IP, or one
// it picks) and validates it with the gateway. release gives the address
// back after err (a refused attach holds nothing) and returns err.
func (a *Attacher) address(ctx context.Context, c Container, o Options) (_ Options, release func(error) error, err error) {
	release = func(err error) error { return err }
	if a.Alloc == nil {
		if !o.IP.IsValid() {
			return o, release, &OptionError{"ip", "", "no address given and no allocator for network " + o.Network}
		}
		return o, release, o.checkAddress()
	}
	r := AllocRequest{Network: o.Network, ContainerID: c.ID, IfName: o.IfName, IP: o.IP}
	ip, err := a.Alloc.Allocate(ctx, r)
	if err != nil {
		return o, release, fmt.Errorf("allocate address in network %s: %w", o.Network, err)
	}
	if !o.IP.IsValid() {
		o.IP = ip
	}
	release = func(err error) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if rerr := a.Alloc.Release(ctx, r, ip.Addr()); rerr != nil {
			return fmt.Errorf("%w; releasing address %s failed: %v", err, ip.Addr(), rerr)
		}
		return err
	}
	if err := o.checkAddress(); err != nil {
		return o, release, release(err)
	}
	return o, release, nil
}

// Release gives back to the allocator the address of an attachment this
// Attacher made and has since taken apart (a rollback after Attach
// returned); without an allocator it does nothing.
func (a *Attacher) Release(ctx context.Context, att Attachment) error {
	if a.Alloc == nil || !att.Created {
		return nil
	}
	r := AllocRequest{Network: att.Options.Network, ContainerID: att.ContainerID, IfName: att.Options.IfName}
	return a.Alloc.Release(ctx, r, att.Options.IP.Addr())
}

func usedIPs(ports []Port, network string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, p := range ports {
		if ip, ok := p.ip(); ok && p.network() == network {
			used[ip] = true
		}
	}
	return used
}

// checkDuplicates refuses an IP or MAC another port holds in the network.
func checkDuplicates(ports []Port, o Options, host string) error {
	ip, mac := o.IP.Addr(), o.mac()
	for _, p := range ports {
		if p.Name == host || p.network() != o.Network {
			continue
		}
		if pip, ok := p.ip(); ok && pip == ip {
			return &DuplicateError{"ip", ip.String(), o.Network, p.Name}
		}
		if pmac, ok := p.mac(); ok && pmac.String() == mac.String() {
			return &DuplicateError{"mac", mac.String(), o.Network, p.Name}
		}
	}
	return nil
}

// checkFree makes sure the names Attach creates are free, so that a failure
// can never make rollback delete something it did not create.
func (a *Attacher) checkFree(c Container, o Options, host string) error {
	l := a.links()
	for _, n := range []struct {
		ns          *NetNS
		name, where string
	}{
		{a.HostNS, host, "host"},
		{c.NetNS, o.IfName, "container " + c.ID},
	} {
		_, err := l.Inspect(n.ns, n.name)
		switch {
		case err == nil:
			return fmt.Errorf("interface %s in %s exists but is not attached (left over from an interrupted attach? run detach): %w", n.name, n.where, ErrInUse)
		case !errors.Is(err, ErrLinkNotFound):
			return fmt.Errorf("inspect %s in %s: %w", n.name, n.where, err)
		}
	}
	return nil
}

// existing checks that an attached interface has the requested settings
// and brings its TX checksum offload to tx.
func (a *Attacher) existing(p Port, c Container, o Options, tx txAction) (Attachment, error) {
	mismatch := func(field, have, want string) error { return &MismatchError{p.Name, field, have, want} }
	if p.network() != o.Network {
		return Attachment{}, mismatch("network", p.network(), o.Network)
	}
	pip, _ := p.ip()
	if o.IP.IsValid() && o.IP.Addr() != pip {
		return Attachment{}, mismatch("ip", pip.String(), o.IP.Addr().String())
	}
	if _, err := a.links().Inspect(a.HostNS, p.Name); err != nil {
		return Attachment{}, fmt.Errorf("port %s: host end: %w: %w (detach and attach again)", p.Name, err, ErrIncomplete)
	}
	st, err := a.links().Inspect(c.NetNS, o.IfName)
	if err != nil {
		return Attachment{}, fmt.Errorf("port %s: container interface: %w: %w (detach and attach again)", p.Name, err, ErrIncomplete)
	}
	if !o.IP.IsValid() {
		o.IP = findAddr(st.Addrs, pip)
	}
	if err := compareState(st, o, mismatch); err != nil {
		return Attachment{}, err
	}
	if pmac, _ := p.mac(); pmac.String() != o.mac().String() {
		return Attachment{}, mismatch("mac", pmac.String(), o.mac().String())
	}
	if have, want := p.ExternalIDs[endpoint.KeyPorts], endpoint.FormatPorts(o.Ports); have != want {
		return Attachment{}, mismatch("published ports", noneIfEmpty(have), noneIfEmpty(want))
	}
	if have := p.ExternalIDs[endpoint.KeyName]; have != o.Name {
		return Attachment{}, mismatch("name", noneIfEmpty(have), noneIfEmpty(o.Name))
	}
	if err := a.ensureTxChecksum(c.NetNS, o.IfName, p.Name, tx); err != nil {
		return Attachment{}, err
	}
	o.MAC = o.mac()
	return Attachment{Port: p.Name, ContainerID: c.ID, Options: o, TxChecksum: tx.String()}, nil
}

func compareState(st LinkState, o Options, mismatch func(field, have, want string) error) error {
	if !containsPrefix(st.Addrs, o.IP) {
		return mismatch("address", fmt.Sprint(st.Addrs), o.IP.String())
	}
	if st.MAC.String() != o.mac().String() {
		return mismatch("container mac", st.MAC.String(), o.mac().String())
	}
	if st.MTU != o.MTU {
		return mismatch("mtu", fmt.Sprint(st.MTU), fmt.Sprint(o.MTU))
	}
	if st.Gateway != o.Gateway {
		return mismatch("gateway", addrOrNone(st.Gateway), addrOrNone(o.Gateway))
	}
	return nil
}

func findAddr(addrs []netip.Prefix, ip netip.Addr) netip.Prefix {
	for _, p := range addrs {
		if p.Addr() == ip {
			return p
		}
	}
	return netip.PrefixFrom(ip, 32)
}

func containsPrefix(addrs []netip.Prefix, p netip.Prefix) bool {
	for _, a := range addrs {
		if a == p {
			return true
		}
	}
	return false
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	return err
}

func (a *Attacher) owner() string {
	if a.Owner == "" {
		return OwnerAttach
	}
	return a.Owner
}

func (a *Attacher) links() Links {
	if a.Links == nil {
		return Netlink{}
	}
	return a.Links
}

func (a *Attacher) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}
