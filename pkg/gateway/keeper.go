package gateway

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// Ports is the part of the OVSDB client the keeper uses (pkg/ovsdb's
// Client): the gateway ports are OVS internal ports on the bridge.
type Ports interface {
	AddPort(ctx context.Context, spec ovsdb.PortSpec) error
	DeletePort(ctx context.Context, name string) error
	Interfaces() []ovsdb.Interface
}

// Links keeps a gateway's interface in the host's namespace (NetlinkLinks).
type Links interface {
	// Ensure sets the interface's MAC, MTU, address and up state, and
	// says what it changed; ErrNoLink while the interface is missing.
	Ensure(g Gateway, mtu int) ([]string, error)
	// Prune removes what it keeps for networks none of gws serves.
	Prune(gws []Gateway) ([]string, error)
}

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	Ports Ports
	Links Links
	Log   *slog.Logger
	// Interval between two checks (default 250 ms): a port deleted by
	// hand or an address removed is back within about this long.
	Interval time.Duration
	// OnChange, if set, is called after a check that changed something.
	OnChange func()
}

// Stats are the keeper's counters.
type Stats struct {
	Gateways int    // gateways wanted
	InSync   bool   // the last check found (or made) every gateway as wanted
	Repairs  uint64 // checks that had to repair a gateway that was right before
	Failures uint64 // checks that failed
}

// Keeper makes the wanted gateways' ports (OVSDB) and interfaces
// (netlink) and keeps them so; it deletes gateway ports no longer wanted.
type Keeper struct {
	cfg  KeeperConfig
	kick chan struct{}

	mu      sync.Mutex
	want    []Gateway
	mtu     int
	stats   Stats
	ok      map[string]bool // port -> was right once: a later change is a repair
	lastErr string
}

// NewKeeper returns a keeper wanting no gateway.
func NewKeeper(cfg KeeperConfig) *Keeper {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{cfg: cfg, kick: make(chan struct{}, 1), ok: map[string]bool{}}
}

// Set makes gws (sorted by network, as Plan returns them) the wanted
// gateways and mtu their interfaces' MTU (0: leave it).
func (k *Keeper) Set(gws []Gateway, mtu int) {
	k.mu.Lock()
	same := slices.EqualFunc(gws, k.want, Gateway.Equal) && mtu == k.mtu
	k.want, k.mtu = slices.Clone(gws), mtu
	k.stats.Gateways = len(gws)
	k.mu.Unlock()
	if !same {
		k.Kick()
	}
}

// SetMTU changes the interfaces' MTU alone.
func (k *Keeper) SetMTU(mtu int) {
	k.mu.Lock()
	same := mtu == k.mtu
	k.mtu = mtu
	k.mu.Unlock()
	if !same {
		k.Kick()
	}
}

// Kick asks for a check now (an OVSDB change, a netlink event).
func (k *Keeper) Kick() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (k *Keeper) Stats() Stats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats
}

// Run checks at every Interval and Kick until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.Interval)
	defer t.Stop()
	for {
		k.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.kick:
		}
	}
}

// Check makes the gateways as wanted once; it reports whether they are.
func (k *Keeper) Check(ctx context.Context) bool {
	k.mu.Lock()
	want, mtu := k.want, k.mtu
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	var errs []error
	changed, repaired := false, false
	wanted := map[string]bool{}
	for _, g := range want {
		wanted[g.Port] = true
	}
	for _, i := range k.cfg.Ports.Interfaces() {
		if i.ExternalIDs[endpoint.KeyRole] == endpoint.RoleGateway && !wanted[i.Name] {
			if err := k.cfg.Ports.DeletePort(ctx, i.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			k.cfg.Log.Info("gateway port removed", "port", i.Name, "network", i.ExternalIDs[endpoint.KeyNetwork])
			changed = true
		}
	}
	ifaces := map[string]ovsdb.Interface{}
	for _, i := range k.cfg.Ports.Interfaces() {
		ifaces[i.Name] = i
	}
	okNow := map[string]bool{}
	for _, g := range want {
		var did []string
		spec := PortSpec(g, mtu)
		if i, ok := ifaces[g.Port]; !ok || i.Type != spec.Type || i.MTURequest != spec.MTURequest || !sameIDs(i.ExternalIDs, spec.ExternalIDs) {
			if err := k.cfg.Ports.AddPort(ctx, spec); err != nil {
				errs = append(errs, err)
				continue
			}
			did = append(did, "port")
		}
		more, err := k.cfg.Links.Ensure(g, mtu)
		did = append(did, more...)
		if len(did) > 0 {
			changed = true
			if k.wasOK(g.Port) {
				repaired = true
			}
			k.cfg.Log.Info("gateway set", "network", g.Network, "port", g.Port, "address", g.Addr, "changed", strings.Join(did, ", "), "repair", k.wasOK(g.Port))
		}
		if err != nil {
			if !errors.Is(err, ErrNoLink) || k.wasOK(g.Port) {
				errs = append(errs, err)
			} else {
				errs = append(errs, nil) // not there yet: not in sync, no failure
			}
			continue
		}
		okNow[g.Port] = true
	}
	if did, err := k.cfg.Links.Prune(want); err != nil {
		errs = append(errs, err)
	} else if len(did) > 0 {
		changed = true
		k.cfg.Log.Info("gateway routing pruned", "changed", strings.Join(did, ", "))
	}
	err := errors.Join(errs...)
	k.mu.Lock()
	for p := range okNow {
		k.ok[p] = true
	}
	for p := range k.ok {
		if !wanted[p] {
			delete(k.ok, p)
		}
	}
	k.stats.InSync = len(errs) == 0
	if repaired {
		k.stats.Repairs++
	}
	logErr := ""
	if err != nil {
		k.stats.Failures++
		logErr = err.Error()
	}
	same := logErr == k.lastErr
	k.lastErr = logErr
	k.mu.Unlock()
	if err != nil && !same {
		k.cfg.Log.Warn("gateway not as wanted (retrying)", "err", err)
	}
	if changed && k.cfg.OnChange != nil {
		k.cfg.OnChange()
	}
	return len(errs) == 0
}

func (k *Keeper) wasOK(port string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ok[port]
}

// PortSpec is the OVS port of a gateway: an internal port whose interface
// carries the endpoint keys (so that the agent programs it like an
// endpoint, and in etcd mode publishes its address like one: the claim
// rules cover it) and the gateway role; the MTU is the interface's
// mtu_request (ovs-vswitchd sets an internal port's MTU itself and resets
// one set by netlink); 0 leaves it to OVS.
func PortSpec(g Gateway, mtu int) ovsdb.PortSpec {
	return ovsdb.PortSpec{Name: g.Port, Type: "internal", MTURequest: mtu, ExternalIDs: map[string]string{
		endpoint.KeyNetwork: g.Network,
		endpoint.KeyIP:      g.IP().String(),
		endpoint.KeyMAC:     g.MAC.String(),
		endpoint.KeyRole:    endpoint.RoleGateway,
	}}
}

// sameIDs compares the keys a gateway port's writer sets (the agent's
// status keys aside).
func sameIDs(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && k != endpoint.KeyInstalled && k != endpoint.KeyError && k != endpoint.KeyPublishError {
			return false
		}
	}
	return true
}
