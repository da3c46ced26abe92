package agent

import (
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// The per-port status marks (pkg/endpoint: external_ids ofctl-agent.installed
// and ofctl-agent.error on the Interface row).
//
// The loop keeps, per interface, its row and the status OVSDB shows, and
// the interfaces whose status may have to change. After every flush and
// every Sync it works out the status of those: the reason it refuses the
// interface, or the installed mark once reconcile says all of the
// endpoint's flows are in OVS, or nothing. What differs from OVSDB goes to
// the OVSDB client's background writer (ovsdb.Client.SetExternalIDs): the
// loop never waits on OVSDB. The rows it writes come back as interface
// events with only the status keys changed: the registry finds the
// endpoint unchanged (no flow is touched) and the mark agrees (nothing is
// written). Before the first Sync of a connection nothing is decided (what
// OVS holds is not known): a restart whose marks are all right writes
// nothing.
type marks struct {
	rows  map[string]markRow // by interface name
	dirty map[string]struct{}
	gen   uint64 // the model generation last seen
	live  bool   // a Sync completed: statuses can be decided
	kick  chan struct{}
}

type markRow struct {
	uuid     string
	have     endpoint.Status // as OVSDB shows it
	endpoint bool            // the row carries ofctl-agent.network
}

func newMarks() *marks {
	return &marks{rows: map[string]markRow{}, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

// seen records an interface event.
func (k *marks) seen(ev ovsdb.InterfaceEvent) {
	name := ev.Interface.Name
	if ev.Kind == ovsdb.Deleted {
		delete(k.rows, name)
		delete(k.dirty, name)
		return
	}
	ext := ev.Interface.ExternalIDs
	_, isEP := ext[endpoint.KeyNetwork]
	k.rows[name] = markRow{uuid: ev.Interface.UUID, have: endpoint.StatusOf(ext), endpoint: isEP}
	k.dirty[name] = struct{}{}
}

func (k *marks) touch(port string) {
	if _, ok := k.rows[port]; ok {
		k.dirty[port] = struct{}{}
	}
}

// syncDone tells the loop that a Sync completed; any goroutine may call it.
func (k *marks) syncDone() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// settleMarks decides the status of the interfaces that may have changed
// and hands those that differ from OVSDB to the writer. Endpoints whose
// flows are not (yet) all in OVS stay to be decided after the next flush
// or Sync.
func (a *Agent) settleMarks() {
	k := a.marks
	if c := a.conn.Load(); c == nil || a.synced.Load() != c {
		// No Sync on this connection yet, or one running elsewhere: what
		// OVS holds is not known, and asking would wait for the Sync's
		// lock. Its end kicks the loop.
		return
	}
	if !k.live {
		if a.lastFull.Load() == 0 {
			return
		}
		k.live = true
		k.dirtyAll()
	}
	if gen := a.model.generation(); gen != k.gen {
		k.gen = gen
		k.dirtyAll()
	}
	for name := range k.dirty {
		row := k.rows[name]
		want, decided := a.status(name, row)
		if decided {
			delete(k.dirty, name)
		}
		if want != row.have {
			a.db.SetExternalIDs(row.uuid, want.ExternalIDs())
		}
	}
}

func (k *marks) dirtyAll() {
	for name := range k.rows {
		k.dirty[name] = struct{}{}
	}
}

// status is what the interface's status keys should say, and whether that
// is final until something changes (false: an endpoint whose flows are not
// all in OVS yet).
func (a *Agent) status(name string, row markRow) (endpoint.Status, bool) {
	if !row.endpoint || name == a.cfg.TunnelPort {
		return endpoint.Status{}, true
	}
	if why := a.badIfaces[name]; why != "" {
		return endpoint.Status{Error: why}, true
	}
	ep, active, ok := a.reg.Get(name)
	switch {
	case !ok:
		return endpoint.Status{}, true // no usable ofport yet: the next event says more
	case !active:
		return endpoint.Status{Error: a.waiting[name]}, true
	}
	if why := a.model.refusal(name); why != "" {
		return endpoint.Status{Error: why}, true
	}
	if a.rec.Installed(endpointOwner(name)) && a.model.loadedFor(name) {
		return endpoint.Status{Installed: ep.IP.String(), PublishError: a.publishRefusal(name)}, true
	}
	return endpoint.Status{}, false
}
