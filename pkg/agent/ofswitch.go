package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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
		st, err := statsOf(r)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// statsOf converts a raw flow-stats entry (ofp_match with its header and
// padding) into flow.Stats (bare OXM TLVs).
func statsOf(r *openflow.FlowStats) (flow.Stats, error) {
	m := r.MatchBytes
	if len(m) < 4 {
		return flow.Stats{}, fmt.Errorf("flow stats: match of %d bytes", len(m))
	}
	n := int(binary.BigEndian.Uint16(m[2:4]))
	if n < 4 || n > len(m) {
		return flow.Stats{}, fmt.Errorf("flow stats: match length %d of %d bytes", n, len(m))
	}
	return flow.Stats{Table: r.TableID, Priority: r.Priority, Cookie: r.Cookie, Flags: r.Flags,
		IdleTimeout: r.IdleTimeout, HardTimeout: r.HardTimeout, Packets: r.PacketCount, Bytes: r.ByteCount,
		Duration: r.Duration, Match: m[4:n], Instructions: r.InstructionBytes}, nil
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
