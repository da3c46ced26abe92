package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// A flow the switch refuses (a bundle fails with a *RefusedError) isolates
// its owner: the owner's flows are deleted from OVS and left out of later
// bundles, and the bundle is sent again without them, so that one bad flow
// costs its owner alone. An isolated owner is retried after RetryAfter,
// doubling up to RetryMax per refused retry, or at once when a Set changes
// its flows; a retry costs one bundle of its flows (and, when refused
// again, one more bundle for the rest). An owner's flows are all in OVS or
// none: a part of an endpoint's flows could let through what the rest
// would stop.

// RefusedError is returned (or wrapped) by Switch.Commit when the switch
// refused some of the flow_mods; nothing was applied.
type RefusedError struct {
	Refused []Refusal
	Err     error // the switch's error, for logs
}

// Refusal is one refused flow_mod: its position in the sequence given to
// Commit (0-based) and the switch's reason.
type Refusal struct {
	Index  int
	Reason error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("switch refused %d flow_mods: %v", len(e.Refused), e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Failure describes an isolated owner.
type Failure struct {
	Key       flow.Key  // the flow the switch refused last
	Flow      string    // that flow, in ovs-ofctl syntax
	Reason    string    // the switch's reason
	Since     time.Time // first refusal
	Retries   int       // refused retries since
	NextRetry time.Time
}

// failure is an isolated owner's state.
type failure struct {
	Failure
	next     time.Time // when to retry (Failure.NextRetry, or earlier after a change)
	retrying bool      // its flows are in the bundles being sent
}

// isolated reports whether o's flows are kept out of OVS.
func (o *ownerFlows) isolated() bool { return o.fail != nil && !o.fail.retrying }

// queueRetries puts the isolated owners whose retry is due back into the
// bundles: all their flows are sent again.
func (r *Reconciler) queueRetries() {
	now := r.cfg.Now()
	for o := range r.failing {
		if o.fail.retrying || now.Before(o.fail.next) {
			continue
		}
		o.fail.retrying = true
		if o.dirty() {
			r.todo[o] = struct{}{}
		}
	}
}

// RetryDue reports whether an isolated owner's retry is due (the next
// Flush sends it).
func (r *Reconciler) RetryDue() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	for o := range r.failing {
		if !o.fail.retrying && !now.Before(o.fail.next) {
			return true
		}
	}
	return false
}

// isolate isolates the owners of the refused adds of a bundle that sent
// nDels deletes, then the adds of a. It returns the keys of their flows
// that OVS holds (queued for deletion), and false if a refused flow_mod is
// not an add it can trace back (nothing is isolated then).
func (r *Reconciler) isolate(e *RefusedError, nDels int, a *adds) ([]flow.Key, bool) {
	type refused struct {
		o      *ownerFlows
		i      int
		reason error
	}
	var rs []refused
	for _, x := range e.Refused {
		o, i := a.at(x.Index - nDels)
		if o == nil {
			return nil, false
		}
		rs = append(rs, refused{o, i, x.Reason})
	}
	var out []flow.Key
	done := map[*ownerFlows]bool{}
	for _, x := range rs {
		r.stats.Refused++
		if !done[x.o] {
			done[x.o] = true
			r.fail(x.o, x.o.flowKey(x.i), x.reason)
			out = append(out, r.uninstall(x.o)...)
		}
	}
	return out, true
}

// fail records that the switch refused flow k of o, and when to retry.
func (r *Reconciler) fail(o *ownerFlows, k flow.Key, reason error) {
	now := r.cfg.Now()
	f := o.fail
	report := f == nil || f.Key != k || f.Reason != reason.Error()
	if f == nil {
		f = &failure{Failure: Failure{Since: now}}
		o.fail = f
		r.failing[o] = struct{}{}
	} else if f.retrying {
		f.Retries++
	}
	f.retrying = false
	f.Key, f.Flow, f.Reason = k, r.flowText(o, k), reason.Error()
	delay := r.cfg.RetryAfter
	for range min(f.Retries, 32) {
		delay = min(2*delay, r.cfg.RetryMax)
	}
	f.NextRetry = now.Add(delay)
	f.next = f.NextRetry
	if report && r.cfg.OnFailure != nil {
		cp := f.Failure
		r.cfg.OnFailure(o.name, &cp)
	}
}

// flowText renders o's flow with key k (regenerated: a refusal is rare).
func (r *Reconciler) flowText(o *ownerFlows, k flow.Key) string {
	for _, f := range r.cfg.Regenerate(o.name) {
		if f.Key() == k {
			return f.String()
		}
	}
	return fmt.Sprintf("table=%d, priority=%d (no longer generated)", k.Table, k.Priority)
}

// uninstall queues the deletion of the flows of o that OVS holds and
// returns their keys.
func (r *Reconciler) uninstall(o *ownerFlows) []flow.Key {
	var out []flow.Key
	for i := range o.slots {
		if s := &o.slots[i]; s.installed {
			k := o.flowKey(i)
			r.gone[k] = s.have
			s.installed = false
			out = append(out, k)
		}
	}
	return out
}

// recovered ends the isolation of the retried owners among owners: their
// flows are in OVS.
func (r *Reconciler) recovered(owners []*ownerFlows) {
	for _, o := range owners {
		if o.fail != nil && o.fail.retrying {
			r.forgetFailure(o)
		}
	}
}

// forgetFailure ends o's isolation (it recovered or is gone).
func (r *Reconciler) forgetFailure(o *ownerFlows) {
	if o.fail == nil {
		return
	}
	o.fail = nil
	delete(r.failing, o)
	if r.cfg.OnFailure != nil {
		r.cfg.OnFailure(o.name, nil)
	}
}

// Failures returns the isolated owners. It never waits (see noWait).
func (r *Reconciler) Failures() map[Owner]Failure {
	return noWait(r, &r.lastFailures, func() map[Owner]Failure {
		out := make(map[Owner]Failure, len(r.failing))
		for o := range r.failing {
			out[o.name] = o.fail.Failure
		}
		return out
	})
}

// Waiting is a flow that waits for its key: Holder holds it.
type Waiting struct {
	Key    flow.Key
	Holder Owner
}

// Waiting returns, per owner, its flows that wait for a key. It never
// waits (see noWait).
func (r *Reconciler) Waiting() map[Owner][]Waiting {
	return noWait(r, &r.lastWaiting, func() map[Owner][]Waiting {
		out := map[Owner][]Waiting{}
		for h, ws := range r.waiters {
			holder := r.byKey[h]
			for _, o := range ws {
				if i := o.findWait(h); i >= 0 {
					out[o.name] = append(out[o.name], Waiting{Key: decodeKey(o.waits[i].rec), Holder: holder.name})
				}
			}
		}
		for _, ws := range out {
			slices.SortFunc(ws, func(a, b Waiting) int { return flow.CompareKeys(a.Key, b.Key) })
		}
		return out
	})
}
