package debugapi

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// rule is a desired flow and the owner it belongs to.
type rule struct {
	flow  flow.Flow
	key   flow.Key
	owner string
}

// Model evaluates packets against a set of flows the way an OpenFlow 1.3
// switch does: in each table the matching flow of highest priority runs
// its actions in order (set_field, load, move, output); goto_table
// continues in a later table; no goto_table ends the pipeline. It models
// the fields of flow.Match and nothing else.
type Model struct {
	tables map[uint8][]rule // each by descending priority, then key
}

// NewModel builds a model of the owners' flows.
func NewModel(owned []agent.Owned) *Model {
	m := &Model{tables: map[uint8][]rule{}}
	for _, o := range owned {
		for _, f := range o.Flows {
			m.tables[f.Table] = append(m.tables[f.Table], rule{flow: f, key: f.Key(), owner: o.Name})
		}
	}
	for _, rs := range m.tables {
		slices.SortStableFunc(rs, func(a, b rule) int { return flow.CompareKeys(a.key, b.key) })
	}
	return m
}

// Step is what happened to a packet in one table.
type Step struct {
	Table uint8
	Hit   *flow.Flow // nil: no flow matched (table miss: drop)
	Owner string
	// Tie is set when another flow of the same priority matched too: the
	// switch may pick either.
	Tie bool
}

// Prediction is a packet's predicted path.
type Prediction struct {
	Steps   []Step
	Outputs []string // output actions reached, as ovs-ofctl prints them
	Final   Packet
}

// Run sends p through the tables, starting at table 0.
func (m *Model) Run(p Packet) Prediction {
	var pr Prediction
	table := uint8(0)
	for range 256 { // goto_table only goes forward: at most 255 hops
		st := m.lookup(table, &p)
		pr.Steps = append(pr.Steps, st)
		if st.Hit == nil {
			break
		}
		next, ok := apply(st.Hit.Actions, &p, &pr.Outputs)
		if !ok || next <= table {
			break
		}
		table = next
	}
	pr.Final = p
	return pr
}

func (m *Model) lookup(table uint8, p *Packet) Step {
	st := Step{Table: table}
	for _, r := range m.tables[table] {
		if st.Hit != nil && r.flow.Priority < st.Hit.Priority {
			break
		}
		if !matches(r.flow.Match, p) {
			continue
		}
		if st.Hit != nil {
			st.Tie = true
			break
		}
		f := r.flow
		st.Hit, st.Owner = &f, r.owner
	}
	return st
}

// apply runs actions on p; it returns the goto_table target, if any.
func apply(actions []flow.Action, p *Packet, outputs *[]string) (uint8, bool) {
	for _, a := range actions {
		switch a := a.(type) {
		case flow.SetField:
			p.Set(a.Field, a.Value)
		case flow.Load:
			writeBits(p, a.Dst, a.Value)
		case flow.Move:
			writeBits(p, a.Dst, readBits(p, a.Src))
		case flow.Output:
			*outputs = append(*outputs, a.String())
		case flow.GotoTable:
			return a.Table, true
		}
	}
	return 0, false
}

func bitMask(n uint8) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}

func readBits(p *Packet, s flow.Subfield) uint64 {
	return p.Get(s.Field) >> s.Ofs & bitMask(s.Bits)
}

func writeBits(p *Packet, s flow.Subfield, v uint64) {
	mask := bitMask(s.Bits) << s.Ofs
	p.Set(s.Field, p.Get(s.Field)&^mask|v<<s.Ofs&mask)
}

// matches reports whether p satisfies every field of m.
func matches(m flow.Match, p *Packet) bool {
	if m.InPort != 0 && p.Get(flow.FieldInPort) != uint64(m.InPort) {
		return false
	}
	if m.EthType != 0 && p.Get(flow.FieldEthType) != uint64(m.EthType) {
		return false
	}
	if m.ArpOp != 0 && p.Get(flow.FieldArpOp) != uint64(m.ArpOp) {
		return false
	}
	macs := []struct {
		f         flow.Field
		mac, mask net.HardwareAddr
	}{{flow.FieldEthSrc, m.EthSrc, m.EthSrcMask}, {flow.FieldEthDst, m.EthDst, m.EthDstMask},
		{flow.FieldArpSha, m.ArpSha, nil}, {flow.FieldArpTha, m.ArpTha, nil}}
	for _, c := range macs {
		if !macMatches(p.Get(c.f), c.mac, c.mask) {
			return false
		}
	}
	prefixes := []struct {
		f flow.Field
		p netip.Prefix
	}{{flow.FieldIPv4Src, m.IPv4Src}, {flow.FieldIPv4Dst, m.IPv4Dst}, {flow.FieldArpSpa, m.ArpSpa},
		{flow.FieldArpTpa, m.ArpTpa}, {flow.FieldTunSrc, m.TunSrc}, {flow.FieldTunDst, m.TunDst}}
	for _, c := range prefixes {
		if c.p.IsValid() && c.p.Bits() > 0 && !c.p.Contains(u64Addr(p.Get(c.f))) {
			return false
		}
	}
	if p.Get(flow.FieldTunID)&m.TunID.Mask != m.TunID.Value&m.TunID.Mask {
		return false
	}
	for i, r := range m.Regs {
		if uint32(p.Get(flow.FieldReg0+flow.Field(i)))&r.Mask != r.Value&r.Mask {
			return false
		}
	}
	return true
}

func macMatches(v uint64, mac, mask net.HardwareAddr) bool {
	if len(mac) != 6 {
		return true
	}
	mk := bitMask(48)
	if len(mask) == 6 {
		mk = macU64(mask)
	}
	return v&mk == macU64(mac)&mk
}

// String is a one-line summary, for logs and test failures.
func (s Step) String() string {
	if s.Hit == nil {
		return fmt.Sprintf("table %d: no match", s.Table)
	}
	return fmt.Sprintf("table %d: %s", s.Table, s.Hit)
}
