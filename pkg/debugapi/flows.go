package debugapi

import (
	"fmt"
	"slices"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// Flow statuses: OVS compared with the agent's desired flows.
const (
	StatusExpected   = "expected"   // in OVS, equal to the desired flow
	StatusMissing    = "missing"    // desired, not in OVS
	StatusUnexpected = "unexpected" // in OVS, not desired (foreign or stale)
	StatusDifferent  = "different"  // same table, priority and match; other cookie or actions
	// StatusFailed: a flow of an owner isolated because OVS refused one of
	// its flows (that one or another): kept out of OVS, retried with
	// backoff; the note gives OVS's error.
	StatusFailed = "failed"
	// StatusWaiting: desired, but another owner holds its key (a
	// conflict, reported when it began): installed when that owner lets
	// go. Not a problem of the switch.
	StatusWaiting = "waiting"
)

// Statuses lists every status, problems last.
var Statuses = []string{StatusExpected, StatusWaiting, StatusMissing, StatusUnexpected, StatusDifferent, StatusFailed}

// FlowsReport is the answer of /debug/flows (?format=json).
type FlowsReport struct {
	Bridge  string            `json:"bridge"`
	Filters map[string]string `json:"filters,omitempty"` // the query's filters, as given
	Summary map[string]int    `json:"summary"`           // flows per status, after filtering
	Tables  []TableFlows      `json:"tables"`
}

// Problems counts flows that are not as desired.
func (r FlowsReport) Problems() int {
	return r.Summary[StatusMissing] + r.Summary[StatusUnexpected] + r.Summary[StatusDifferent] + r.Summary[StatusFailed]
}

// TableFlows are the flows of one table.
type TableFlows struct {
	Table uint8       `json:"table"`
	Name  string      `json:"name"` // pipeline name, or "table<N>" outside the pipeline
	Doc   string      `json:"doc,omitempty"`
	Flows []FlowEntry `json:"flows"`
}

// FlowEntry is one flow, in OVS or desired or both.
type FlowEntry struct {
	Status   string `json:"status"`
	Table    uint8  `json:"table"`
	Priority uint16 `json:"priority"`
	Cookie   string `json:"cookie"` // "0x..."
	// Flow is the flow in ovs-ofctl syntax, as `ovs-ofctl -O OpenFlow13
	// dump-flows --no-stats` prints it: OVS's flow, or the desired one
	// when missing.
	Flow    string `json:"flow"`
	Desired string `json:"desired,omitempty"` // status different: the desired flow
	Owner   string `json:"owner,omitempty"`   // what the flow is for
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// DurationSeconds is how long the flow has been in OVS.
	DurationSeconds float64 `json:"duration_seconds"`
	Note            string  `json:"note,omitempty"`
}

// item is a FlowEntry with what filters need.
type item struct {
	entry  FlowEntry
	key    flow.Key
	cookie uint64
	// flows are OVS's flow (when it decodes) and the desired one (when
	// different or missing): filters select an item if either fits.
	flows []flow.Flow
}

type desiredFlow struct {
	flow  flow.Flow
	owner string
	fail  *reconcile.Failure // the owner is isolated
}

// compareFlows sets a status on every actual and desired flow.
func compareFlows(owned []agent.Owned, actual []flow.Stats) []item {
	desired := map[flow.Key]desiredFlow{}
	var items []item
	for _, o := range owned {
		for _, f := range o.Flows {
			k := f.Key()
			if holder, ok := o.Waiting[k]; ok {
				items = append(items, desiredItem(k, f, o.Name, StatusWaiting,
					fmt.Sprintf("its key is held by %s (a conflict): installed when that lets go", holder)))
				continue
			}
			desired[k] = desiredFlow{f, o.Name, o.Failure}
		}
	}
	seen := map[flow.Key]bool{}
	items = slices.Grow(items, len(actual)+len(desired))
	for _, st := range actual {
		it := actualItem(st)
		if d, ok := desired[it.key]; ok {
			seen[it.key] = true
			it.entry.Owner = d.owner
			switch {
			case d.fail != nil:
				it.entry.Status, it.entry.Note = StatusFailed, failedNote(it.key, d.fail)+"; this one is being removed"
			case st.Content() != d.flow.Content():
				it.entry.Status, it.entry.Desired = StatusDifferent, d.flow.String()
				it.flows = append(it.flows, d.flow)
				it.entry.Note = differNote(st, d.flow)
			}
		} else {
			it.entry.Status = StatusUnexpected
			it.entry.Owner, it.entry.Note = strangerNote(st)
		}
		items = append(items, it)
	}
	for k, d := range desired {
		switch {
		case seen[k]:
		case d.fail != nil:
			items = append(items, desiredItem(k, d.flow, d.owner, StatusFailed, failedNote(k, d.fail)))
		default:
			items = append(items, desiredItem(k, d.flow, d.owner, StatusMissing, "desired but not in OVS: the next drift check adds it"))
		}
	}
	slices.SortStableFunc(items, func(a, b item) int { return flow.CompareKeys(a.key, b.key) })
	return items
}

// desiredItem is a desired flow OVS does not hold.
func desiredItem(k flow.Key, f flow.Flow, owner, status, note string) item {
	return item{key: k, cookie: f.Cookie, flows: []flow.Flow{f}, entry: FlowEntry{Status: status,
		Table: f.Table, Priority: f.Priority, Cookie: fmt.Sprintf("%#x", f.Cookie), Flow: f.String(),
		Owner: owner, Note: note}}
}

// failedNote explains a flow of an isolated owner.
func failedNote(k flow.Key, f *reconcile.Failure) string {
	retry := fmt.Sprintf("retry at %s (%d refused so far)", f.NextRetry.UTC().Format(time.RFC3339), f.Retries)
	if k == f.Key {
		return fmt.Sprintf("OVS refused this flow: %s; its owner's flows are kept out of OVS, %s", f.Reason, retry)
	}
	return fmt.Sprintf("kept out of OVS: OVS refused another flow of its owner (%s): %s; %s", f.Flow, f.Reason, retry)
}

// actualItem renders a flow read from OVS; undecodable flows are shown from
// their raw bytes.
func actualItem(st flow.Stats) item {
	it := item{key: st.Key(), cookie: st.Cookie, entry: FlowEntry{Status: StatusExpected, Table: st.Table,
		Priority: st.Priority, Cookie: fmt.Sprintf("%#x", st.Cookie), Packets: st.Packets, Bytes: st.Bytes,
		DurationSeconds: st.Duration.Seconds()}}
	f, err := st.Flow()
	if err != nil {
		it.entry.Flow = rawFlowString(st)
		it.entry.Note = fmt.Sprintf("cannot decode (%v): shown as raw OXM match and instruction bytes", err)
		return it
	}
	it.flows = []flow.Flow{f}
	it.entry.Flow = f.String()
	return it
}

func rawFlowString(st flow.Stats) string {
	s := ""
	if st.Cookie != 0 {
		s = fmt.Sprintf("cookie=%#x, ", st.Cookie)
	}
	if st.Table != 0 {
		s += fmt.Sprintf("table=%d, ", st.Table)
	}
	if st.IdleTimeout != 0 || st.HardTimeout != 0 || st.Flags != 0 {
		s += fmt.Sprintf("idle_timeout=%d, hard_timeout=%d, flags=%#x, ", st.IdleTimeout, st.HardTimeout, st.Flags)
	}
	return s + fmt.Sprintf("priority=%d,oxm=%x actions=instructions:%x", st.Priority, st.Match, st.Instructions)
}

func differNote(st flow.Stats, want flow.Flow) string {
	if st.Cookie != want.Cookie {
		return fmt.Sprintf("cookie %#x in OVS, %#x desired: the next drift check rewrites it", st.Cookie, want.Cookie)
	}
	return "other actions in OVS than desired: the next drift check rewrites it"
}

// strangerNote says whose an unexpected flow could be.
func strangerNote(st flow.Stats) (owner, note string) {
	if int(st.Table) >= len(pipeline.Tables()) {
		return "", "outside the pipeline's tables: the agent neither uses nor removes it"
	}
	cat, id, ok := pipeline.ParseCookie(st.Cookie)
	if !ok {
		return "", "foreign cookie (not the agent's): the next drift check deletes it"
	}
	return fmt.Sprintf("stale: %s %#08x", categoryName(cat), id),
		"agent cookie of an object that no longer wants this flow: the next drift check deletes it"
}

func categoryName(c pipeline.Category) string {
	switch c {
	case pipeline.CategoryFixed:
		return "fixed"
	case pipeline.CategoryNetwork:
		return "network"
	case pipeline.CategoryLocalEndpoint:
		return "endpoint"
	case pipeline.CategoryRemoteHost:
		return "host"
	case pipeline.CategoryRemoteEndpoint:
		return "remote endpoint"
	}
	return fmt.Sprintf("category %d", c)
}

// tableName names a table of the pipeline, or "table<N>".
func tableName(t uint8) (name, doc string) {
	if tables := pipeline.Tables(); int(t) < len(tables) {
		return tables[t].Name, tables[t].Doc
	}
	return fmt.Sprintf("table%d", t), ""
}

// report groups filtered items by table. With showEmpty every pipeline
// table is listed, even without flows.
func report(bridge string, items []item, filters map[string]string, showEmpty bool) FlowsReport {
	r := FlowsReport{Bridge: bridge, Filters: filters, Summary: map[string]int{}}
	for _, s := range Statuses {
		r.Summary[s] = 0
	}
	byTable := map[uint8][]FlowEntry{}
	var ids []uint8
	if showEmpty {
		for _, t := range pipeline.Tables() {
			ids = append(ids, t.ID)
		}
	}
	for _, it := range items {
		t := it.entry.Table
		if _, ok := byTable[t]; !ok && !slices.Contains(ids, t) {
			ids = append(ids, t)
		}
		byTable[t] = append(byTable[t], it.entry)
		r.Summary[it.entry.Status]++
	}
	slices.Sort(ids)
	for _, id := range ids {
		name, doc := tableName(id)
		r.Tables = append(r.Tables, TableFlows{Table: id, Name: name, Doc: doc, Flows: append([]FlowEntry{}, byTable[id]...)})
	}
	return r
}
