package debugapi

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// TraceReport is the answer of /debug/trace (?format=json).
type TraceReport struct {
	Bridge string `json:"bridge"`
	// Packet is the traced packet in ovs-ofctl flow syntax, defaults
	// filled in: the flow given to ofproto/trace.
	Packet string `json:"packet"`
	// Model is the path the agent's desired flows predict.
	Model TraceSide `json:"model"`
	// OVS is the path ofproto/trace reports; nil when it could not run
	// (OVSError says why).
	OVS      *TraceSide `json:"ovs,omitempty"`
	OVSError string     `json:"ovs_error,omitempty"`
	// DatapathActions is OVS's verdict for the datapath ("drop", "1", ...).
	DatapathActions string `json:"datapath_actions,omitempty"`
	// Differences lists every disagreement between Model and OVS, one
	// sentence each; empty when they agree.
	Differences []string `json:"differences"`
	// OVSText is ofproto/trace's full output.
	OVSText string `json:"ovs_text,omitempty"`
}

// Agree reports whether OVS ran and did what the model predicts.
func (r TraceReport) Agree() bool { return r.OVS != nil && len(r.Differences) == 0 }

// TraceSide is one side's path through the tables.
type TraceSide struct {
	Steps   []TraceStep `json:"steps"`
	Outputs []string    `json:"outputs"` // output actions run, as ovs-ofctl prints them
	// Changed are the packet and register fields rewritten on the way,
	// in OVS notation (name -> value).
	Changed map[string]string `json:"changed"`
	// Verdict sums the path up: "output:N", "IN_PORT", "dropped in
	// <table>" or "cannot evaluate <table>".
	Verdict string `json:"verdict"`
	// CannotEvaluate is set when the model met a flow matching a field or
	// running an action it does not model: it says which, and the path
	// stops at that table (the model's side only).
	CannotEvaluate string `json:"cannot_evaluate,omitempty"`
}

// TraceStep is one table visited.
type TraceStep struct {
	Table     uint8    `json:"table"`
	TableName string   `json:"table_name"`
	Matched   bool     `json:"matched"` // false: no flow matched (dropped)
	Priority  uint16   `json:"priority"`
	Cookie    string   `json:"cookie,omitempty"`
	Match     string   `json:"match"`   // ovs-ofctl syntax, "" for a catch-all
	Actions   []string `json:"actions"` // "drop" when none
	Owner     string   `json:"owner,omitempty"`
	Notes     []string `json:"notes,omitempty"` // OVS's comments (">> Nonexistent output port")
	// CannotEvaluate says why the model cannot tell what this table does.
	CannotEvaluate string `json:"cannot_evaluate,omitempty"`
}

// modelSide turns a prediction into a TraceSide.
func modelSide(pr Prediction, initial Packet) TraceSide {
	s := TraceSide{Outputs: nonNil(pr.Outputs), Changed: pr.Final.changed(&initial)}
	for _, st := range pr.Steps {
		name, _ := tableName(st.Table)
		ts := TraceStep{Table: st.Table, TableName: name, Actions: []string{}, CannotEvaluate: st.CannotEvaluate}
		if st.CannotEvaluate != "" {
			s.CannotEvaluate = fmt.Sprintf("table %d %s: %s", st.Table, name, st.CannotEvaluate)
		}
		if st.Hit != nil {
			ts.Matched, ts.Priority, ts.Match, ts.Owner = true, st.Hit.Priority, st.Hit.Match.String(), st.Owner
			ts.Cookie = fmt.Sprintf("%#x", st.Hit.Cookie)
			ts.Actions = actionStrings(st.Hit.Actions)
			if st.Tie {
				ts.Notes = append(ts.Notes, "another flow of the same priority matches too: OVS may pick either")
			}
		}
		s.Steps = append(s.Steps, ts)
	}
	s.Verdict = verdict(s)
	return s
}

func actionStrings(as []flow.Action) []string {
	if len(as) == 0 {
		return []string{"drop"}
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// ovsSide turns a parsed ofproto/trace into a TraceSide.
func ovsSide(t OVSTrace) TraceSide {
	changed, _ := t.changedFields()
	s := TraceSide{Outputs: nonNil(t.Outputs), Changed: changed}
	for _, st := range t.Steps {
		name, _ := tableName(st.Table)
		ts := TraceStep{Table: st.Table, TableName: name, Matched: st.Matched, Priority: st.Priority,
			Match: st.Match, Actions: nonNil(st.Actions), Notes: st.Notes}
		if st.Matched {
			ts.Cookie = fmt.Sprintf("%#x", st.Cookie)
			if len(ts.Actions) == 0 {
				ts.Actions = []string{"drop"}
			}
		}
		s.Steps = append(s.Steps, ts)
	}
	s.Verdict = verdict(s)
	return s
}

func verdict(s TraceSide) string {
	if n := len(s.Steps); s.CannotEvaluate != "" && n > 0 {
		return "cannot evaluate " + s.Steps[n-1].TableName
	}
	if len(s.Outputs) > 0 {
		return strings.Join(s.Outputs, ", ")
	}
	if n := len(s.Steps); n > 0 {
		return "dropped in " + s.Steps[n-1].TableName
	}
	return "dropped"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// differences compares the two sides table by table, then outputs and
// rewritten fields. shown are the fields OVS's final packet states.
func differences(m, o TraceSide, shown map[string]bool) []string {
	var out []string
	if m.CannotEvaluate != "" {
		out = append(out, "the model cannot evaluate "+m.CannotEvaluate)
	}
	for i := range max(len(m.Steps), len(o.Steps)) {
		switch {
		case i >= len(m.Steps):
			out = append(out, fmt.Sprintf("OVS continues to table %d %s (%s); the model stops before", o.Steps[i].Table, o.Steps[i].TableName, hitText(o.Steps[i])))
		case i >= len(o.Steps):
			out = append(out, fmt.Sprintf("the model continues to table %d %s (%s); OVS stops before", m.Steps[i].Table, m.Steps[i].TableName, hitText(m.Steps[i])))
		default:
			out = append(out, stepDifferences(m.Steps[i], o.Steps[i])...)
		}
	}
	if !slices.Equal(m.Outputs, o.Outputs) {
		out = append(out, fmt.Sprintf("outputs: model %s, OVS %s", listText(m.Outputs), listText(o.Outputs)))
	}
	for _, k := range slices.Sorted(maps.Keys(fieldUnion(m.Changed, o.Changed))) {
		mv, mok := m.Changed[k]
		ov, ook := o.Changed[k]
		switch {
		case mok && ook && mv != ov:
			out = append(out, fmt.Sprintf("final %s: model %s, OVS %s", k, mv, ov))
		case ook && !mok:
			out = append(out, fmt.Sprintf("final %s: OVS rewrites it to %s, the model leaves it", k, ov))
		case mok && !ook && shown[k]:
			out = append(out, fmt.Sprintf("final %s: the model rewrites it to %s, OVS leaves it", k, mv))
		}
	}
	return out
}

func stepDifferences(m, o TraceStep) []string {
	where := fmt.Sprintf("table %d %s", m.Table, m.TableName)
	switch {
	case m.Table != o.Table:
		return []string{fmt.Sprintf("the model goes to table %d %s, OVS to table %d %s", m.Table, m.TableName, o.Table, o.TableName)}
	case m.Matched != o.Matched || m.Priority != o.Priority || m.Match != o.Match:
		return []string{fmt.Sprintf("%s: the model hits %s, OVS hits %s", where, hitText(m), hitText(o))}
	}
	var out []string
	if m.Matched && m.Cookie != o.Cookie {
		out = append(out, fmt.Sprintf("%s: same flow, cookie %s desired, %s in OVS", where, m.Cookie, o.Cookie))
	}
	if !slices.Equal(m.Actions, o.Actions) {
		out = append(out, fmt.Sprintf("%s: same flow, actions %s desired, %s in OVS", where,
			strings.Join(m.Actions, ","), strings.Join(o.Actions, ",")))
	}
	return out
}

func hitText(s TraceStep) string {
	if !s.Matched {
		return "no flow"
	}
	if s.Match == "" {
		return fmt.Sprintf("priority=%d", s.Priority)
	}
	return fmt.Sprintf("priority=%d,%s", s.Priority, s.Match)
}

func listText(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func fieldUnion(a, b map[string]string) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}
