package debugapi

import (
	"fmt"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// rule is a desired flow and the owner it belongs to.
type rule struct {
	flow  flow.Flow
	key   flow.Key
	owner string
	// unmodelled names a field the flow matches that Packet does not
	// hold; "" when the model can evaluate the match.
	unmodelled string
	fields     []flow.FieldMatch // the match's, copied once (Match.Fields copies)
}

// Model evaluates packets against a set of flows the way an OpenFlow 1.3
// switch does: in each table the matching flow of highest priority runs
// its actions in order (set_field, load, move, output); goto_table
// continues in a later table; no goto_table ends the pipeline. It models
// the fields of Packet and those actions, nothing else: a table whose
// choice depends on a flow matching another field, or whose chosen flow
// runs another action, cannot be evaluated, and the prediction stops there
// saying so (Step.CannotEvaluate) instead of guessing.
type Model struct {
	tables map[uint8][]rule // each by descending priority, then key
}

// NewModel builds a model of the owners' flows.
func NewModel(owned []agent.Owned) *Model {
	m := &Model{tables: map[uint8][]rule{}}
	for _, o := range owned {
		for _, f := range o.Flows {
			r := rule{flow: f, key: f.Key(), owner: o.Name, fields: f.Match.Fields()}
			if fm, ok := unmodelledField(f.Match); ok {
				r.unmodelled = fm.Field.String()
			}
			m.tables[f.Table] = append(m.tables[f.Table], r)
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
	Hit   *flow.Flow // nil: no flow matched (table miss: drop), or CannotEvaluate
	Owner string
	// Tie is set when another flow of the same priority matched too: the
	// switch may pick either.
	Tie bool
	// CannotEvaluate says why the model cannot tell what the table does
	// (a flow matching or an action writing what the model does not
	// model); the prediction ends here.
	CannotEvaluate string
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
		if st.Hit != nil && st.CannotEvaluate == "" {
			if a := unmodelledAction(st.Hit.Actions); a != nil {
				st.CannotEvaluate = fmt.Sprintf("action %s of the flow that matches is not modelled", a)
			}
		}
		pr.Steps = append(pr.Steps, st)
		if st.Hit == nil || st.CannotEvaluate != "" {
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
		if r.unmodelled != "" {
			st.Hit, st.Owner, st.Tie = nil, "", false
			st.CannotEvaluate = fmt.Sprintf("flow %q matches %s, which the model does not evaluate", r.flow.String(), r.unmodelled)
			return st
		}
		if !matches(r.fields, p) {
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

// unmodelledField is a field of m that Packet does not hold, if any.
func unmodelledField(m flow.Match) (flow.FieldMatch, bool) {
	for _, fm := range m.Fields() {
		if _, ok := fieldIndex(fm.Field); !ok {
			return fm, true
		}
	}
	return flow.FieldMatch{}, false
}

// unmodelledAction is the first action apply cannot run faithfully, if any.
func unmodelledAction(actions []flow.Action) flow.Action {
	for _, a := range actions {
		ok := false
		switch a := a.(type) {
		case flow.SetField:
			_, ok = fieldIndex(a.Field)
		case flow.Load:
			_, ok = fieldIndex(a.Dst.Field)
		case flow.Move:
			_, ok1 := fieldIndex(a.Src.Field)
			_, ok2 := fieldIndex(a.Dst.Field)
			ok = ok1 && ok2
		case flow.Output, flow.GotoTable:
			ok = true
		}
		if !ok {
			return a
		}
	}
	return nil
}

// apply runs actions on p; it returns the goto_table target, if any.
func apply(actions []flow.Action, p *Packet, outputs *[]string) (uint8, bool) {
	for _, a := range actions {
		switch a := a.(type) {
		case flow.SetField:
			p.Set(a.Field, a.Value.U64())
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

// matches reports whether p satisfies every field match (all modelled).
func matches(fields []flow.FieldMatch, p *Packet) bool {
	for _, fm := range fields {
		if !fm.Matches(flow.U64(p.Get(fm.Field))) {
			return false
		}
	}
	return true
}

// String is a one-line summary, for logs and test failures.
func (s Step) String() string {
	switch {
	case s.CannotEvaluate != "":
		return fmt.Sprintf("table %d: cannot evaluate: %s", s.Table, s.CannotEvaluate)
	case s.Hit == nil:
		return fmt.Sprintf("table %d: no match", s.Table)
	}
	return fmt.Sprintf("table %d: %s", s.Table, s.Hit)
}
