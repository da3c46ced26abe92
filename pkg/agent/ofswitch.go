package agent

import (
	"context"
	"errors"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// errNoSwitch is returned while there is no OpenFlow connection.
var errNoSwitch = errors.New("no openflow connection")

// ofSwitch is reconcile.Switch over the current OpenFlow connection.
type ofSwitch struct {
	conn     func() *openflow.Conn // current connection or nil
	maxTable uint8                 // the agent owns tables 0..maxTable
}

// DumpFlows reads every flow of the agent's tables, foreign ones included.
func (s ofSwitch) DumpFlows(ctx context.Context) ([]flow.Stats, error) {
	c := s.conn()
	if c == nil {
		return nil, errNoSwitch
	}
	raw, err := c.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow13.OFPTT_ALL, RawOnly: true})
	if err != nil {
		return nil, err
	}
	out := make([]flow.Stats, 0, len(raw))
	for i := range raw {
		r := &raw[i]
		if r.TableID > s.maxTable {
			continue
		}
		st, err := flow.FromReply(r)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Commit applies mods in one atomic, ordered bundle.
func (s ofSwitch) Commit(ctx context.Context, mods []*openflow13.FlowMod) error {
	c := s.conn()
	if c == nil {
		return errNoSwitch
	}
	b, err := c.Bundle(ctx)
	if err != nil {
		return err
	}
	for _, m := range mods {
		if err := b.Add(m); err != nil {
			_ = b.Discard(ctx)
			return err
		}
	}
	return b.Commit(ctx)
}
