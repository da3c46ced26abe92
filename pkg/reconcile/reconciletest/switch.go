// Package reconciletest has a fake switch for tests of code that drives a
// reconcile.Reconciler: it models one OpenFlow table set closely enough
// (ADD replaces the flow with the same table, priority and match;
// DELETE_STRICT removes it; a commit is all or nothing).
package reconciletest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// Switch is a fake reconcile.Switch. Its fields are for tests to inspect
// (lock Mu when the reconciler may run concurrently).
type Switch struct {
	Mu       sync.Mutex
	Flows    map[flow.Key]flow.Stats
	Commits  [][]*openflow13.FlowMod
	FailNext bool // the next commit fails (nothing applied)
	// Refuse, if set, is asked about every flow_mod of a commit: a non-nil
	// reason refuses it, and the commit fails with a
	// *reconcile.RefusedError naming every refused flow_mod, as Open
	// vSwitch refuses bad flow_mods when they are added to a bundle.
	// Nothing is applied.
	Refuse func(*openflow13.FlowMod) error
	// RefuseFirst: name only the first refused flow_mod, as Open vSwitch
	// does for a flow_mod that fails when the bundle is committed (a full
	// table).
	RefuseFirst bool
	Refused     int // flow_mods refused so far
}

// New returns an empty switch.
func New() *Switch { return &Switch{Flows: map[flow.Key]flow.Stats{}} }

// DumpFlows calls each for every flow, in no particular order.
func (s *Switch) DumpFlows(_ context.Context, each func(*flow.Stats) error) error {
	s.Mu.Lock()
	flows := make([]flow.Stats, 0, len(s.Flows))
	for _, f := range s.Flows {
		flows = append(flows, f)
	}
	s.Mu.Unlock()
	for i := range flows {
		if err := each(&flows[i]); err != nil {
			return err
		}
	}
	return nil
}

// DumpScope calls each for every flow of table whose cookie is cookie.
func (s *Switch) DumpScope(ctx context.Context, table uint8, cookie uint64, each func(*flow.Stats) error) error {
	return s.DumpFlows(ctx, func(st *flow.Stats) error {
		if st.Table != table || st.Cookie != cookie {
			return nil
		}
		return each(st)
	})
}

// Commit applies mods atomically: nothing when the sequence yields an
// error.
func (s *Switch) Commit(_ context.Context, seq iter.Seq2[*openflow13.FlowMod, error]) error {
	var mods []*openflow13.FlowMod
	for m, err := range seq {
		if err != nil {
			return err
		}
		mods = append(mods, m)
	}
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.FailNext {
		s.FailNext = false
		return errors.New("injected bundle failure")
	}
	if err := s.refuse(mods); err != nil {
		return err
	}
	next := make(map[flow.Key]flow.Stats, len(s.Flows))
	for k, v := range s.Flows {
		next[k] = v
	}
	for _, m := range mods {
		st, err := StatsOfFlowMod(m)
		if err != nil {
			return err
		}
		switch m.Command {
		case openflow13.FC_ADD:
			next[st.Key()] = st
		case openflow13.FC_DELETE_STRICT:
			delete(next, st.Key())
		default:
			return fmt.Errorf("fake switch: command %d", m.Command)
		}
	}
	s.Flows = next
	s.Commits = append(s.Commits, mods)
	return nil
}

// Get returns the flow with key k, if the switch holds one.
func (s *Switch) Get(k flow.Key) (flow.Stats, bool) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	st, ok := s.Flows[k]
	return st, ok
}

// refuse applies Refuse to mods.
func (s *Switch) refuse(mods []*openflow13.FlowMod) error {
	if s.Refuse == nil {
		return nil
	}
	var e reconcile.RefusedError
	for i, m := range mods {
		if reason := s.Refuse(m); reason != nil {
			s.Refused++
			e.Refused = append(e.Refused, reconcile.Refusal{Index: i, Reason: reason})
			if s.RefuseFirst {
				break
			}
		}
	}
	if len(e.Refused) == 0 {
		return nil
	}
	e.Err = fmt.Errorf("fake switch: %d flow_mods refused, first: %w", len(e.Refused), e.Refused[0].Reason)
	return &e
}

// Add installs a flow behind the reconciler's back (a rogue ovs-ofctl add-flow).
func (s *Switch) Add(f flow.Flow) {
	fm, err := f.FlowMod(openflow13.FC_ADD)
	if err != nil {
		panic(err)
	}
	st, err := StatsOfFlowMod(fm)
	if err != nil {
		panic(err)
	}
	s.Mu.Lock()
	s.Flows[st.Key()] = st
	s.Mu.Unlock()
}

// StatsOfFlowMod re-frames an encoded flow_mod as an ofp_flow_stats entry
// and decodes it as the agent decodes what OVS sends (openflow's parser,
// then flow.FromReply), so the fake sees exactly the bytes OVS would
// receive.
func StatsOfFlowMod(fm *openflow13.FlowMod) (flow.Stats, error) {
	b, err := fm.MarshalBinary()
	if err != nil {
		return flow.Stats{}, err
	}
	const fmFixed = 48 // ofp_flow_mod before its match
	body := b[fmFixed:]
	entry := make([]byte, 48, 48+len(body))
	binary.BigEndian.PutUint16(entry[0:], uint16(48+len(body)))
	entry[2] = b[24]             // table
	copy(entry[12:14], b[30:32]) // priority
	copy(entry[14:18], b[26:30]) // idle, hard timeouts
	copy(entry[18:20], b[44:46]) // flags
	copy(entry[24:32], b[8:16])  // cookie
	entry = append(entry, body...)
	if fm.Command == openflow13.FC_DELETE_STRICT {
		// Deletes carry no instructions; the match alone is the key.
		mlen := int(binary.BigEndian.Uint16(body[2:4]))
		entry = entry[:48+(mlen+7)/8*8]
		binary.BigEndian.PutUint16(entry[0:], uint16(len(entry)))
	}
	raw, err := openflow.ParseFlowStats(entry)
	if err != nil || len(raw) != 1 {
		return flow.Stats{}, fmt.Errorf("fake switch: decode flow_mod: %v", err)
	}
	return flow.FromReply(&raw[0])
}
