package netfilter

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// Defaults of Options.
const (
	DefaultResyncPeriod = 10 * time.Second
	// retryPeriod is the wait before another try after a failed sync or
	// while a gateway or uplink interface is missing.
	retryPeriod = time.Second
)

// Options configure a Keeper.
type Options struct {
	Table string // the agent's table (family ip); DefaultTable when empty
	// NetNS is the path of the network namespace whose packet filter is
	// kept (e.g. /var/run/netns/x, for tests); empty: the caller's.
	NetNS string
	// ResyncPeriod is how often the kernel is compared with the rules when
	// no change was reported (a safety net; forwarding flags have no
	// events). Default DefaultResyncPeriod.
	ResyncPeriod time.Duration
	Logger       *slog.Logger
}

// Status is the Keeper's state, for metrics and logs.
type Status struct {
	InSync   bool   // the last comparison found (or made) the kernel equal to the rules
	Syncs    uint64 // comparisons with the kernel
	Changes  uint64 // batches sent (from Apply or repairs)
	Repairs  uint64 // batches sent without a new State: out-of-band changes undone
	Failures uint64 // failed comparisons or batches (retried)
	// Uplinks are the uplinks in use: State.Uplinks, or the interfaces of
	// the default routes found at the last sync.
	Uplinks []string
	// ForwardingMissing are gateway or uplink interfaces not found (yet);
	// their forwarding flag is set once they appear (checked every second).
	ForwardingMissing []string
	LastError         string
}

// Keeper keeps the agent's table, its rules in DOCKER-USER and the
// forwarding flags equal to the last State applied. Apply, Run, Counters
// and Status may be called from different goroutines.
type Keeper struct {
	opt Options
	log *slog.Logger
	ns  netns.NsHandle // -1: the caller's namespace

	mu      sync.Mutex // serializes syncs; guards the fields below
	desired *Ruleset
	refused []error
	status  Status
}

// New returns a Keeper; nothing is changed before the first Apply.
func New(o Options) (*Keeper, error) {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = DefaultResyncPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	k := &Keeper{opt: o, log: o.Logger, ns: -1}
	if o.NetNS != "" {
		h, err := netns.GetFromPath(o.NetNS)
		if err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", o.NetNS, err)
		}
		k.ns = h
	}
	return k, nil
}

// Close releases the namespace handle. Rules stay in the kernel.
func (k *Keeper) Close() error {
	if k.ns >= 0 {
		return k.ns.Close()
	}
	return nil
}

// conn returns a connection to the kept namespace's nftables. A new one
// for every batch: a Conn keeps messages queued by a batch that failed
// before being sent.
func (k *Keeper) conn() (*nftables.Conn, error) {
	if k.ns >= 0 {
		return nftables.New(nftables.WithNetNSFd(int(k.ns)))
	}
	return nftables.New()
}

// Apply makes s the desired state and brings the kernel to it now. It
// returns the refusals not returned by the previous Apply (each refused
// item is reported once, until it is accepted or gone; Refused lists them
// all), and err when the kernel could not be brought to the rules (Run
// retries).
func (k *Keeper) Apply(s State) (refused []error, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s.Publishes = k.stickyOrder(s.Publishes)
	rs, all := Build(k.opt.Table, s)
	for _, r := range all {
		if !slices.ContainsFunc(k.refused, func(o error) bool { return o.Error() == r.Error() }) {
			refused = append(refused, r)
		}
	}
	k.desired, k.refused = rs, all
	return refused, k.syncLocked(false)
}

// Refused returns the refusals of the State in force.
func (k *Keeper) Refused() []error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.refused)
}

// Ruleset returns the rules in force (nil before the first Apply).
func (k *Keeper) Ruleset() *Ruleset {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.desired
}

// Status returns the Keeper's counters.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.status
	s.Uplinks, s.ForwardingMissing = slices.Clone(s.Uplinks), slices.Clone(s.ForwardingMissing)
	return s
}

// Present reports whether the kernel holds the agent's table (one from an
// earlier run, before the first Apply).
func (k *Keeper) Present() (bool, error) {
	c, err := k.conn()
	if err != nil {
		return false, err
	}
	kt, _, _, err := readKernel(c, k.opt.Table)
	if err != nil {
		return false, fmt.Errorf("netfilter: %w", err)
	}
	return kt.exists, nil
}

// stickyOrder puts first the publishes that hold their host port now (in
// the rules in force, or before the first Apply in the kernel's table), so
// that a conflict never moves a port from its holder to a newcomer, not
// even across an agent restart.
func (k *Keeper) stickyOrder(ps []Publish) []Publish {
	var holders map[string]string
	if k.desired == nil {
		holders = k.readHolders()
	} else {
		holders = map[string]string{}
		for _, p := range k.desired.publishes {
			holders[p.key()] = p.Endpoint
		}
	}
	out := make([]Publish, 0, len(ps))
	for _, p := range ps {
		if holders[p.key()] == p.Endpoint {
			out = append(out, p)
		}
	}
	for _, p := range ps {
		if holders[p.key()] != p.Endpoint {
			out = append(out, p)
		}
	}
	return out
}

// readHolders reads the publishes' comments ("tcp/8080 endpoint") of the
// kernel's published chain.
func (k *Keeper) readHolders() map[string]string {
	out := map[string]string{}
	c, err := k.conn()
	if err != nil {
		return out
	}
	kt, _, _, err := readKernel(c, k.opt.Table)
	if err != nil || kt.chains[chainPublished] == nil {
		return out
	}
	for _, r := range kt.chains[chainPublished].rules {
		if key, endpoint, ok := strings.Cut(r.comment, " "); ok {
			if _, dup := out[key]; !dup {
				out[key] = endpoint
			}
		}
	}
	return out
}

// syncLocked compares the kernel with the rules and sends what differs;
// repair tells a sync without a new State.
func (k *Keeper) syncLocked(repair bool) error {
	if k.desired == nil {
		return nil
	}
	k.status.Syncs++
	ops, err := k.compare(k.desired)
	if err == nil && len(ops) > 0 {
		var c *nftables.Conn
		if c, err = k.conn(); err == nil {
			err = send(c, k.desired, ops)
		}
		if err == nil {
			k.status.Changes++
			if repair {
				k.status.Repairs++
				k.log.Warn("netfilter: repaired out-of-band changes", "table", k.opt.Table, "changes", len(ops), "first", ops[0].String())
			} else {
				k.log.Debug("netfilter: rules changed", "table", k.opt.Table, "changes", len(ops))
			}
		}
	}
	if ferr := k.forwarding(k.desired); ferr != nil {
		err = errors.Join(err, ferr)
	}
	k.status.InSync = err == nil
	if err != nil {
		err = fmt.Errorf("netfilter: %w", err)
		k.status.Failures++
		k.status.LastError = err.Error()
		return err
	}
	k.status.LastError = ""
	return nil
}

// compare reads the kernel and plans the changes.
func (k *Keeper) compare(rs *Ruleset) ([]op, error) {
	c, err := k.conn()
	if err != nil {
		return nil, err
	}
	kt, docker, ok, err := readKernel(c, rs.Table)
	if err != nil {
		return nil, err
	}
	ops := plan(rs, kt)
	if ok {
		ops = append(ops, planDocker(rs.Table, rs.DockerUser, docker)...)
	}
	return ops, nil
}

// forwarding turns IPv4 forwarding on for the gateways and uplinks.
func (k *Keeper) forwarding(rs *Ruleset) error {
	return inNetNS(k.opt.NetNS, func() error {
		uplinks := rs.Uplinks
		if len(uplinks) == 0 {
			var err error
			if uplinks, err = defaultRouteInterfaces(); err != nil {
				return err
			}
		}
		if !slices.Equal(uplinks, k.status.Uplinks) {
			k.log.Info("netfilter: uplinks", "interfaces", uplinks, "default_routes", len(rs.Uplinks) == 0)
		}
		enabled, missing, err := enableForwarding(slices.Concat(rs.Gateways, uplinks))
		if len(enabled) > 0 {
			k.log.Info("netfilter: turned on IPv4 forwarding", "interfaces", enabled)
		}
		k.status.Uplinks, k.status.ForwardingMissing = uplinks, missing
		return err
	})
}

// Cleanup removes the agent's table and its rules in DOCKER-USER, in one
// batch. Stop the Keeper's Run first: it would put them back. Forwarding
// flags are left as they are.
func Cleanup(o Options) error {
	k, err := New(o)
	if err != nil {
		return err
	}
	defer k.Close()
	c, err := k.conn()
	if err != nil {
		return err
	}
	kt, docker, ok, err := readKernel(c, k.opt.Table)
	if err != nil {
		return err
	}
	var ops []op
	if kt.exists {
		ops = append(ops, op{kind: opDelTable})
	}
	if ok {
		ops = append(ops, planDocker(k.opt.Table, nil, docker)...)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := send(c, &Ruleset{Table: k.opt.Table}, ops); err != nil {
		return fmt.Errorf("netfilter cleanup: %w", err)
	}
	return nil
}
