package reconcile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// fakeSwitch models an OpenFlow table well enough for the reconciler: ADD
// replaces the flow with the same table/priority/match, DELETE_STRICT removes
// it, a commit is all-or-nothing.
type fakeSwitch struct {
	mu      sync.Mutex
	flows   map[flow.Key]flow.Stats
	commits [][]*openflow13.FlowMod
	failAt  int // when > 0, the next commit fails (nothing applied)
}

func newFakeSwitch() *fakeSwitch { return &fakeSwitch{flows: map[flow.Key]flow.Stats{}} }

func (s *fakeSwitch) DumpFlows(context.Context) ([]flow.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]flow.Stats, 0, len(s.flows))
	for _, f := range s.flows {
		out = append(out, f)
	}
	return out, nil
}

func (s *fakeSwitch) Commit(_ context.Context, mods []*openflow13.FlowMod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 {
		s.failAt = 0
		return errors.New("injected bundle failure")
	}
	next := make(map[flow.Key]flow.Stats, len(s.flows))
	for k, v := range s.flows {
		next[k] = v
	}
	for _, m := range mods {
		st, err := statsOfFlowMod(m)
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
	s.flows = next
	s.commits = append(s.commits, mods)
	return nil
}

// add installs a flow behind the reconciler's back (a rogue ovs-ofctl add-flow).
func (s *fakeSwitch) add(f flow.Flow) {
	fm, err := f.FlowMod(openflow13.FC_ADD)
	if err != nil {
		panic(err)
	}
	st, err := statsOfFlowMod(fm)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.flows[st.Key()] = st
	s.mu.Unlock()
}

// statsOfFlowMod re-frames an encoded flow_mod as an ofp_flow_stats entry
// and decodes it with flow.DecodeFlowStats, so the fake sees exactly the
// bytes OVS would receive.
func statsOfFlowMod(fm *openflow13.FlowMod) (flow.Stats, error) {
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
	st, err := flow.DecodeFlowStats(entry)
	if err != nil || len(st) != 1 {
		return flow.Stats{}, fmt.Errorf("fake switch: decode flow_mod: %v", err)
	}
	return st[0], nil
}
