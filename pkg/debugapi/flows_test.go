package debugapi

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// drifted is OVS after drift: the reference flows except that one is
// missing, one has other actions, and four strangers were added.
type drifted struct {
	stats                                []flow.Stats
	missing, different                   flow.Flow
	foreign, stale, outside, undecodable flow.Stats
}

func driftedOVS(t *testing.T) drifted {
	var d drifted
	for i, f := range pipeline.Build(pipeline.Reference()) {
		switch {
		case f.Table == pipeline.ARPResponder.ID() && f.Priority == 124 && d.missing.Cookie == 0:
			d.missing = f // an ARP range answer of h2
			continue
		case f.Table == pipeline.L2Forward.ID() && f.Priority == 200 && len(f.Actions) == 1 && d.different.Cookie == 0:
			d.different = f // a local delivery
			f.Actions = nil
		}
		d.stats = append(d.stats, statsOfFlow(t, f, uint64(i)))
	}
	d.foreign = statsOfFlow(t, flow.Flow{Table: pipeline.L2Forward.ID(), Priority: 300, Cookie: 0x1234, Match: flow.NewMatch(flow.FieldEthDst.MAC(mac("0a:58:0a:01:01:02")))}, 7)
	d.stale = statsOfFlow(t, flow.Flow{Table: pipeline.SpoofGuard.ID(), Priority: 200, Cookie: pipeline.Endpoint{Port: "gone"}.Cookie(),
		Match: flow.NewMatch(flow.FieldInPort.Is(9))}, 0)
	d.outside = statsOfFlow(t, flow.Flow{Table: 50, Priority: 1}, 0)
	d.undecodable = statsOfFlow(t, flow.Flow{Table: pipeline.TunnelIngress.ID(), Priority: 50, Match: flow.NewMatch(flow.FieldInPort.Is(4))}, 0)
	d.undecodable.Instructions = []byte{0, 3, 0, 8, 0, 0, 0, 0} // write_actions: not modelled
	d.stats = append(d.stats, d.foreign, d.stale, d.outside, d.undecodable)
	return d
}

func byFlow(items []item) map[string]item {
	m := map[string]item{}
	for _, it := range items {
		m[it.entry.Flow] = it
	}
	return m
}

func TestCompareFlows(t *testing.T) {
	d := driftedOVS(t)
	items := compareFlows(owners(pipeline.Reference()), d.stats)
	got := byFlow(items)
	want := len(pipeline.Build(pipeline.Reference())) + 4
	if len(items) != want {
		t.Fatalf("%d items, want %d", len(items), want)
	}
	check := func(text, status, owner, note string) {
		t.Helper()
		it, ok := got[text]
		if !ok {
			t.Fatalf("no item %q", text)
		}
		if it.entry.Status != status || !strings.HasPrefix(it.entry.Owner, owner) || owner == "" && it.entry.Owner != "" || !strings.Contains(it.entry.Note, note) {
			t.Errorf("%s: status %q owner %q note %q; want %q %q %q", text, it.entry.Status, it.entry.Owner,
				it.entry.Note, status, owner, note)
		}
	}
	check(d.missing.String(), StatusMissing, "host h2", "next drift check adds")
	diff := d.different
	diff.Actions = nil
	check(diff.String(), StatusDifferent, "endpoint vblue-b (blue 10.1.1.3)", "other actions")
	if it := got[diff.String()]; it.entry.Desired != d.different.String() {
		t.Errorf("different: desired %q", it.entry.Desired)
	}
	f, _ := d.foreign.Flow()
	check(f.String(), StatusUnexpected, "", "foreign cookie")
	f, _ = d.stale.Flow()
	check(f.String(), StatusUnexpected, "stale: endpoint", "no longer wants")
	f, _ = d.outside.Flow()
	check(f.String(), StatusUnexpected, "", "outside the pipeline")
	check(rawFlowString(d.undecodable), StatusUnexpected, "", "foreign cookie")
	if !strings.Contains(rawFlowString(d.undecodable), "instructions:0003000800000000") {
		t.Errorf("raw text %q", rawFlowString(d.undecodable))
	}
	fixed := pipeline.FixedFlows(100)[0]
	check(fixed.String(), StatusExpected, "fixed", "")
	if it := got[fixed.String()]; it.entry.Packets == 0 && it.entry.Bytes != 100*it.entry.Packets {
		t.Errorf("counters %+v", it.entry)
	}
	if !slices.IsSortedFunc(items, func(a, b item) int { return flow.CompareKeys(a.key, b.key) }) {
		t.Error("items not in table/priority order")
	}
}

// get runs a request against handlers over the drifted switch.
func get(t *testing.T, path string, trace func(ctx context.Context, bridge, packet string) (string, error)) *httptest.ResponseRecorder {
	t.Helper()
	d := driftedOVS(t)
	s := newServer(refSource(), Options{Logger: slog.New(slog.DiscardHandler)})
	s.dump = func(context.Context) ([]flow.Stats, error) { return d.stats, nil }
	if trace != nil {
		s.trace = trace
	}
	h := http.NewServeMux()
	h.HandleFunc("/debug/flows", s.serveFlows)
	h.HandleFunc("/debug/trace", s.serveTrace)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func flowsJSON(t *testing.T, query string) FlowsReport {
	t.Helper()
	rec := get(t, "/debug/flows?format=json&"+query, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body)
	}
	var r FlowsReport
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func entries(r FlowsReport) []FlowEntry {
	var out []FlowEntry
	for _, t := range r.Tables {
		out = append(out, t.Flows...)
	}
	return out
}

func TestFlowsFilters(t *testing.T) {
	tests := []struct {
		query string
		n     int                    // flows listed
		each  func(f FlowEntry) bool // every listed flow satisfies it
	}{
		{"", 47, func(FlowEntry) bool { return true }},
		{"table=l2_forward", 12, func(f FlowEntry) bool { return f.Table == pipeline.L2Forward.ID() }},
		{"table=50", 1, func(f FlowEntry) bool { return f.Table == 50 }},
		{"status=missing,different", 2, func(f FlowEntry) bool { return f.Status != StatusExpected && f.Status != StatusUnexpected }},
		{"status=unexpected", 4, func(f FlowEntry) bool { return f.Status == StatusUnexpected }},
		{"port=vblue-b", 5, func(f FlowEntry) bool {
			return strings.Contains(f.Flow, "in_port=2") || strings.Contains(f.Flow+f.Desired, "output:2")
		}},
		{"port=100", 2, func(f FlowEntry) bool { return strings.Contains(f.Flow, "100") }},
		{"endpoint=10.1.1.3", 6, func(f FlowEntry) bool { return f.Owner == "endpoint vblue-b (blue 10.1.1.3)" }},
		{"endpoint=vred-a", 5, func(f FlowEntry) bool { return f.Owner == "endpoint vred-a (red 10.2.1.2)" }},
		{"endpoint=10.1.2.200", 2, func(f FlowEntry) bool { return f.Owner == "host h2" }},
		{"network=red", 15, func(f FlowEntry) bool { return strings.Contains(f.Flow, "0xc8") || strings.Contains(f.Owner, "red") }},
		{"network=blue&table=arp_responder&status=expected", 4, func(f FlowEntry) bool { return strings.Contains(f.Flow, "reg0=0x64") }},
	}
	for _, tt := range tests {
		r := flowsJSON(t, tt.query)
		es := entries(r)
		if len(es) != tt.n {
			var lines []string
			for _, e := range es {
				lines = append(lines, e.Status+" "+e.Flow)
			}
			t.Errorf("%q: %d flows, want %d:\n%s", tt.query, len(es), tt.n, strings.Join(lines, "\n"))
		}
		for _, e := range es {
			if !tt.each(e) {
				t.Errorf("%q: unwanted %s %s (%s)", tt.query, e.Status, e.Flow, e.Owner)
			}
		}
		sum := 0
		for _, n := range r.Summary {
			sum += n
		}
		if sum != len(es) {
			t.Errorf("%q: summary %v for %d flows", tt.query, r.Summary, len(es))
		}
	}
}

func TestFlowsSummaryAndText(t *testing.T) {
	r := flowsJSON(t, "")
	if r.Summary[StatusMissing] != 1 || r.Summary[StatusDifferent] != 1 || r.Summary[StatusUnexpected] != 4 || r.Problems() != 6 {
		t.Errorf("summary %v", r.Summary)
	}
	if len(r.Tables) != 8 || r.Tables[1].Name != "spoof_guard" || r.Tables[7].Name != "table50" {
		t.Errorf("tables %+v", r.Tables)
	}
	rec := get(t, "/debug/flows", nil)
	body := rec.Body.String()
	for _, want := range []string{"41 expected, 1 MISSING, 4 UNEXPECTED, 1 DIFFERENT", "table 5 l2_forward: by network",
		"UNEXPECTED", "in OVS:  cookie=", "desired: cookie=", "note: foreign cookie", "packets=0 bytes=0"} {
		if !strings.Contains(body, want) {
			t.Errorf("text lacks %q:\n%s", want, body)
		}
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
}

func TestBadQueries(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/debug/flows?tabel=1", "tabel: unknown parameter"},
		{"/debug/flows?table=nope", "table: \"nope\": want a table number"},
		{"/debug/flows?table=255", "want a table number"},
		{"/debug/flows?status=broken", "status: \"broken\""},
		{"/debug/flows?port=nosuch", "neither a port number nor an interface"},
		{"/debug/flows?port=broken", "has no OpenFlow port"},
		{"/debug/flows?endpoint=nobody", "not a local endpoint"},
		{"/debug/flows?network=green", "no network \"green\" (known: blue, red)"},
		{"/debug/flows?format=xml", "want text or json"},
		{"/debug/flows?table=1&table=2", "given 2 times"},
		{"/debug/flows?port=", "empty value"},
		{"/debug/trace?arp_tpa=10.1.1.3", "in_port: required"},
		{"/debug/trace?in_port=vblue-a", "say which packet"},
		{"/debug/trace?in_port=vblue-a&arp_tpa=10.1.1.3&nw_dst=10.1.1.3", "no nw_src/nw_dst"},
		{"/debug/trace?in_port=vblue-a&arp&icmp&arp_tpa=1.2.3.4", "only one of"},
		{"/debug/trace?in_port=vblue-a&icmp&arp_tpa=1.2.3.4", "arp_* parameters need arp"},
		{"/debug/trace?in_port=vblue-a&arp=yes&arp_tpa=1.2.3.4", "a flag"},
		{"/debug/trace?in_port=vblue-a&arp", "arp_tpa: required"},
		{"/debug/trace?in_port=vblue-a&arp_tpa=10.1.1", "not an IPv4 address"},
		{"/debug/trace?in_port=vblue-a&arp_tpa=10.1.1.3&dl_src=zz", "not an Ethernet address"},
		{"/debug/trace?in_port=vblue-a&arp_tpa=10.1.1.3&arp_op=70000", "not a 16-bit number"},
		{"/debug/trace?in_port=gre0&nw_dst=10.1.1.3", "dl_src: required here"},
		{"/debug/trace?in_port=vblue-a&nw_dst=10.1.1.3&ttl=5", "ttl: unknown parameter"},
	}
	for _, tt := range tests {
		rec := get(t, tt.path, nil)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tt.path, rec.Code, rec.Body, tt.want)
		}
	}
	rec := httptest.NewRecorder()
	Handlers(refSource(), Options{})[FlowsPattern].ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/debug/flows", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestFlowsWithoutConnection(t *testing.T) {
	for _, addr := range []string{"", "unix:" + filepath.Join(t.TempDir(), "none.mgmt")} {
		rec := httptest.NewRecorder()
		Handlers(refSource(), Options{OpenFlow: openflow.Config{Addr: addr}})[FlowsPattern].ServeHTTP(rec,
			httptest.NewRequest(http.MethodGet, "/debug/flows", nil))
		want := "no OpenFlow address"
		if addr != "" {
			want = "none.mgmt: connect: no such file or directory (is ovs-vswitchd running?)"
		}
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("OpenFlow address %q: %d %q, want 503 with %q", addr, rec.Code, rec.Body, want)
		}
	}
}

// /debug/flows reads OVS on a connection opened for the request and closed
// after it, never on the agent's.
func TestFlowsReadOnAConnectionOfTheirOwn(t *testing.T) {
	var mu sync.Mutex
	var sessions []*ofswitchtest.Session
	sw := ofswitchtest.Start(t, ofswitchtest.Options{Handler: func(ss *ofswitchtest.Session, msg []byte) bool {
		if msg[1] != ofswitchtest.TypeMultipartReq || binary.BigEndian.Uint16(msg[8:10]) != 1 { // OFPMP_FLOW
			return false
		}
		mu.Lock()
		sessions = append(sessions, ss)
		mu.Unlock()
		xid := binary.BigEndian.Uint32(msg[4:8])
		_ = ss.Send(ofswitchtest.MultipartReply(xid, 1, false, ofswitchtest.FlowStatsEntry(0, 0, 0, 7)))
		return true
	}})
	hs := Handlers(refSource(), Options{OpenFlow: openflow.Config{Addr: sw.Addr()}, Logger: slog.New(slog.DiscardHandler)})
	for range 2 {
		rec := httptest.NewRecorder()
		hs[FlowsPattern].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/flows", nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "priority=0 actions=drop") {
			t.Fatalf("/debug/flows = %d %s", rec.Code, rec.Body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sessions) != 2 || sessions[0] == sessions[1] {
		t.Fatalf("two requests read flows on %d connections, want one each", len(sessions))
	}
	for _, ss := range sessions {
		select {
		case <-ss.Closed():
		case <-time.After(5 * time.Second):
			t.Fatal("a request's connection is still open after its answer")
		}
	}
}

// TestCompareFlowsFailedAndWaiting: the flows of an isolated owner are
// "failed" (in OVS or not), the refused one's note giving OVS's reason; a
// flow waiting for a key another owner holds is "waiting", beside the
// holder's flow, which stays expected.
func TestCompareFlowsFailedAndWaiting(t *testing.T) {
	owned := owners(pipeline.Reference())
	i := slices.IndexFunc(owned, func(o agent.Owned) bool { return strings.HasPrefix(o.Name, "endpoint ") })
	bad := &owned[i]
	refused, leftover := bad.Flows[len(bad.Flows)-1], bad.Flows[0]
	bad.Failure = &reconcile.Failure{Key: refused.Key(), Flow: refused.String(), Reason: "OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL"}
	var stats []flow.Stats
	for _, f := range allFlows(owned) {
		if !slices.ContainsFunc(bad.Flows, func(b flow.Flow) bool { return b.Key() == f.Key() }) || f.Key() == leftover.Key() {
			stats = append(stats, statsOfFlow(t, f, 1))
		}
	}
	j := slices.IndexFunc(owned, func(o agent.Owned) bool { return strings.HasPrefix(o.Name, "endpoint ") && o.Name != bad.Name })
	holder := owned[j]
	arp := holder.Flows[slices.IndexFunc(holder.Flows, func(f flow.Flow) bool { return f.Table == pipeline.ARPResponder.ID() })]
	claim := arp
	claim.Cookie = 0xc1a1
	owned = append(owned, agent.Owned{Name: "host hx", Flows: []flow.Flow{claim}, Waiting: map[flow.Key]string{claim.Key(): holder.Name}})

	items := compareFlows(owned, stats)
	count := map[string]int{}
	for _, it := range items {
		count[it.entry.Status]++
		switch {
		case it.entry.Owner == bad.Name && it.entry.Status != StatusFailed:
			t.Errorf("%s of the isolated owner: %s", it.entry.Flow, it.entry.Status)
		case it.key == refused.Key() && !strings.Contains(it.entry.Note, "OVS refused this flow: OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL"):
			t.Errorf("refused flow's note %q", it.entry.Note)
		case it.key == leftover.Key() && !strings.Contains(it.entry.Note, "being removed"):
			t.Errorf("isolated flow still in OVS: note %q", it.entry.Note)
		case it.key == arp.Key() && it.entry.Owner == holder.Name && it.entry.Status != StatusExpected:
			t.Errorf("the holder's flow: %s", it.entry.Status)
		case it.entry.Owner == "host hx" && (it.entry.Status != StatusWaiting || !strings.Contains(it.entry.Note, holder.Name)):
			t.Errorf("the waiting flow: %s, note %q", it.entry.Status, it.entry.Note)
		}
	}
	if count[StatusFailed] != len(bad.Flows) || count[StatusWaiting] != 1 || count[StatusMissing]+count[StatusUnexpected]+count[StatusDifferent] != 0 {
		t.Fatalf("statuses %v: want %d failed, 1 waiting, no other problem", count, len(bad.Flows))
	}
	rep := report("br-int", items, nil, false)
	if rep.Problems() != len(bad.Flows) {
		t.Fatalf("problems %d, want the %d failed flows", rep.Problems(), len(bad.Flows))
	}
	var b strings.Builder
	if err := WriteFlowsText(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAILED") || !strings.Contains(b.String(), "WAITING") {
		t.Fatalf("text report:\n%s", b.String())
	}
}
