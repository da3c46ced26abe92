package agent

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// errNoSwitch is returned while there is no OpenFlow connection.
var errNoSwitch = errors.New("no openflow connection")

// ofSwitch is reconcile.Switch over the current OpenFlow connection.
type ofSwitch struct {
	conn     func() *openflow.Conn // current connection or nil
	maxTable uint8                 // the agent owns tables 0..maxTable
}

// DumpFlows calls each for every flow of the agent's tables, foreign ones
// included, reply by reply as OVS sends them.
func (s ofSwitch) DumpFlows(ctx context.Context, each func(*flow.Stats) error) error {
	return s.dump(ctx, openflow.FlowStatsFilter{TableID: openflow13.OFPTT_ALL}, each)
}

// DumpScope calls each for every flow of table whose cookie is exactly
// cookie (OVS answers from its cookie index: the cost is the flows
// returned). Tables beyond maxTable are not the agent's: nothing.
func (s ofSwitch) DumpScope(ctx context.Context, table uint8, cookie uint64, each func(*flow.Stats) error) error {
	if table > s.maxTable {
		return nil
	}
	return s.dump(ctx, openflow.FlowStatsFilter{TableID: table, Cookie: cookie, CookieMask: ^uint64(0)}, each)
}

// dump calls each for every flow f selects in the agent's tables.
func (s ofSwitch) dump(ctx context.Context, f openflow.FlowStatsFilter, each func(*flow.Stats) error) error {
	c := s.conn()
	if c == nil {
		return errNoSwitch
	}
	return c.FlowStatsEach(ctx, f, s.ours(each))
}

// ours calls each with the flows of the agent's tables.
func (s ofSwitch) ours(each func(*flow.Stats) error) func(*openflow.FlowStats) error {
	return func(r *openflow.FlowStats) error {
		if r.TableID > s.maxTable {
			return nil
		}
		st, err := flow.FromReply(r)
		if err != nil {
			return err
		}
		return each(&st)
	}
}

// Commit applies mods in one atomic, ordered bundle; an error from mods
// discards it. Flow_mods OVS refuses are named by a
// *reconcile.RefusedError (their positions are their positions in mods:
// one bundle message each).
func (s ofSwitch) Commit(ctx context.Context, mods iter.Seq2[*openflow13.FlowMod, error]) error {
	c := s.conn()
	if c == nil {
		return errNoSwitch
	}
	b, err := c.Bundle(ctx)
	if err != nil {
		return err
	}
	for m, err := range mods {
		if err == nil {
			err = b.Add(m)
		}
		if err != nil {
			_ = b.Discard(ctx)
			return err
		}
	}
	return refused(b.Commit(ctx))
}

// refused turns the error of a bundle whose messages OVS refused into a
// *reconcile.RefusedError (wrapping it); other errors pass unchanged.
func refused(err error) error {
	var be *openflow.BundleError
	if !errors.As(err, &be) || len(be.Refused) == 0 {
		return err
	}
	re := &reconcile.RefusedError{Err: err}
	for _, m := range be.Refused {
		// The type and code alone: the same refusal reads the same at
		// every retry (the message's xid and bundle change).
		reason := fmt.Errorf("%s/%s", m.Err.TypeName(), m.Err.CodeName())
		re.Refused = append(re.Refused, reconcile.Refusal{Index: m.Index, Reason: reason})
	}
	return re
}
