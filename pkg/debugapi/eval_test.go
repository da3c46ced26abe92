package debugapi

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// TestOwnersGiveReferenceFlows: the fixture's owners give exactly
// pkg/pipeline's reference flows, the ones the captured traces ran on.
func TestOwnersGiveReferenceFlows(t *testing.T) {
	got := allFlows(owners(pipeline.Reference()))
	flow.Sort(got)
	if d := flow.Dump(pipeline.Build(pipeline.Reference())); flow.Dump(got) != d {
		t.Fatalf("owners differ from Build:\n%s\nwant\n%s", flow.Dump(got), d)
	}
	golden, err := os.ReadFile(filepath.Join("..", "pipeline", "testdata", "reference.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if flow.Dump(got) != string(golden) {
		t.Fatal("pipeline.Reference no longer matches pkg/pipeline/testdata/reference.golden")
	}
}

func packetOf(t *testing.T, query string) tracePacket {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	src := refSource()
	tp, err := parseTraceQuery(q, env{state: src.state, ifs: src.ifs})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return tp
}

func TestModelGolden(t *testing.T) {
	m := NewModel(owners(pipeline.Reference()))
	tests := []struct {
		name    string
		query   string
		tables  []pipeline.Table
		owners  []string // owner of the last step's flow
		outputs []string
		changed map[string]string // exactly the rewritten fields
	}{
		{"ARP request answered in place", "in_port=vblue-a&arp_tpa=10.1.1.3", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.ARPResponder},
			[]string{"endpoint vblue-b (blue 10.1.1.3)"}, []string{"IN_PORT"}, map[string]string{
				"reg0": "0x64", "dl_src": "02:00:00:00:01:03", "dl_dst": "0a:58:0a:01:01:02", "arp_op": "2",
				"arp_spa": "10.1.1.3", "arp_tpa": "10.1.1.2", "arp_sha": "02:00:00:00:01:03", "arp_tha": "0a:58:0a:01:01:02"}},
		{"ARP for a remote range: derived MAC", "in_port=1&arp&arp_tpa=10.1.2.77", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.ARPResponder},
			[]string{"host h2"}, []string{"IN_PORT"}, map[string]string{
				"reg0": "0x64", "dl_src": "0a:58:0a:01:02:4d", "dl_dst": "0a:58:0a:01:01:02", "arp_op": "2",
				"arp_spa": "10.1.2.77", "arp_tpa": "10.1.1.2", "arp_sha": "0a:58:0a:01:02:4d", "arp_tha": "0a:58:0a:01:01:02"}},
		{"cross-host ICMP to the tunnel", "in_port=vblue-a&nw_dst=10.1.2.5", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.L2Forward, pipeline.TunnelEgress},
			[]string{"fixed"}, []string{"output:100"}, map[string]string{
				"reg0": "0x64", "reg2": "0xc0000202", "tun_dst": "192.0.2.2", "tun_id": "0x64"}},
		{"remote endpoint through h3", "in_port=vblue-a&icmp&nw_dst=10.1.4.7&dl_dst=02:00:00:00:04:07", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.L2Forward, pipeline.TunnelEgress},
			[]string{"fixed"}, []string{"output:100"}, map[string]string{
				"reg0": "0x64", "reg2": "0xc0000203", "tun_dst": "192.0.2.3", "tun_id": "0x64"}},
		{"spoofed MAC dropped in spoof_guard", "in_port=vblue-a&dl_src=0a:58:0a:01:01:09&nw_dst=10.1.1.3", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard},
			[]string{"endpoint vblue-a (blue 10.1.1.2)"}, nil, map[string]string{}},
		{"spoofed IP dropped in spoof_guard", "in_port=vblue-a&nw_src=10.1.1.9&nw_dst=10.1.1.3", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard},
			[]string{"endpoint vblue-a (blue 10.1.1.2)"}, nil, map[string]string{}},
		{"cross-network dropped in l2_forward", "in_port=vblue-a&nw_dst=10.2.1.2", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.L2Forward},
			[]string{"fixed"}, nil, map[string]string{"reg0": "0x64"}},
		{"ARP for another network unanswered", "in_port=vblue-a&arp_tpa=10.2.1.2", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.ARPResponder},
			[]string{"fixed"}, nil, map[string]string{"reg0": "0x64"}},
		{"local delivery", "in_port=vblue-a&nw_dst=10.1.1.3", []pipeline.Table{pipeline.Classifier, pipeline.SpoofGuard, pipeline.L2Forward},
			[]string{"endpoint vblue-b (blue 10.1.1.3)"}, []string{"output:2"}, map[string]string{"reg0": "0x64"}},
		{"from tunnel to a derived MAC: rewritten", "in_port=gre0&tun_src=192.0.2.2&tun_id=100&dl_src=0a:58:0a:01:02:05&nw_src=10.1.2.5&nw_dst=10.1.1.3&dl_dst=0a:58:0a:01:01:03",
			[]pipeline.Table{pipeline.Classifier, pipeline.TunnelIngress, pipeline.TunnelNetwork, pipeline.L2Forward}, []string{"endpoint vblue-b (blue 10.1.1.3)"}, []string{"output:2"},
			map[string]string{"reg0": "0x64", "reg1": "0x1", "dl_dst": "02:00:00:00:01:03"}},
		{"from an unknown host", "in_port=gre0&tun_src=192.0.2.99&tun_id=100&dl_src=0a:58:0a:01:02:05&nw_src=10.1.2.5&nw_dst=10.1.1.2",
			[]pipeline.Table{pipeline.Classifier, pipeline.TunnelIngress}, []string{"fixed"}, nil, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := packetOf(t, tt.query)
			pr := m.Run(tp.pkt)
			var tables []pipeline.Table
			for _, s := range pr.Steps {
				tb, _ := pipeline.TableByID(s.Table)
				tables = append(tables, tb)
				if s.Hit == nil {
					t.Errorf("table %d: no flow matched; every table has a miss flow", s.Table)
				}
			}
			if !slices.Equal(tables, tt.tables) {
				t.Errorf("tables %v, want %v (steps %v)", tables, tt.tables, pr.Steps)
			}
			if last := pr.Steps[len(pr.Steps)-1]; !slices.Contains(tt.owners, last.Owner) {
				t.Errorf("last flow owned by %q, want %q", last.Owner, tt.owners)
			}
			if !slices.Equal(pr.Outputs, tt.outputs) {
				t.Errorf("outputs %q, want %q", pr.Outputs, tt.outputs)
			}
			if got := pr.Final.changed(&tp.pkt); !maps.Equal(got, tt.changed) {
				t.Errorf("changed %v, want %v", got, tt.changed)
			}
		})
	}
}

// TestModelAgreesWithCapturedOVS: the model and real ofproto/trace
// output (captured from OVS 3.1 running the reference flows) agree, and
// a tampered capture is flagged.
func TestModelAgreesWithCapturedOVS(t *testing.T) {
	m := NewModel(owners(pipeline.Reference()))
	tests := []struct{ file, query string }{
		{"arp-range.trace", "in_port=1&arp_tpa=10.1.2.77"},
		{"icmp-tunnel.trace", "in_port=1&nw_dst=10.1.2.5"},
		{"icmp-spoofed.trace", "in_port=1&dl_src=0a:58:0a:01:01:09&nw_dst=10.1.2.5&dl_dst=0a:58:0a:01:02:05"},
		{"icmp-from-tunnel.trace", "in_port=100&tun_src=192.0.2.2&tun_id=0x64&dl_src=0a:58:0a:01:02:05&nw_src=10.1.2.5&nw_dst=10.1.1.3&dl_dst=0a:58:0a:01:01:03"},
	}
	for _, tt := range tests {
		text := readTestdata(t, tt.file)
		tp := packetOf(t, tt.query)
		model := modelSide(m.Run(tp.pkt), tp.pkt)
		for _, tamper := range []bool{false, true} {
			in := text
			if tamper { // the last table's first action becomes something else
				in = strings.Replace(text, "\n    goto_table:", "\n    drop\n    goto_table:", 1)
			}
			ot, err := ParseOVSTrace(in)
			if err != nil {
				t.Fatalf("%s: %v", tt.file, err)
			}
			_, shown := ot.changedFields()
			diffs := differences(model, ovsSide(ot), shown)
			if !tamper && len(diffs) > 0 {
				t.Errorf("%s: model and OVS differ: %q", tt.file, diffs)
			}
			if tamper && len(diffs) == 0 {
				t.Errorf("%s: tampered trace not flagged", tt.file)
			}
		}
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestModelTiesMissesAndBackwardGoto(t *testing.T) {
	a := flow.Flow{Table: 0, Priority: 5, Match: flow.NewMatch(flow.FieldInPort.Is(1)), Actions: []flow.Action{flow.Output{Port: 2}}}
	b := flow.Flow{Table: 0, Priority: 5, Match: flow.NewMatch(flow.FieldEthType.Is(uint64(flow.EthTypeIPv4))), Actions: []flow.Action{flow.Output{Port: 3}}}
	c := flow.Flow{Table: 0, Priority: 1, Match: flow.NewMatch(flow.FieldInPort.Is(7)), Actions: []flow.Action{flow.GotoTable{Table: 2}}}
	back := flow.Flow{Table: 2, Priority: 1, Actions: []flow.Action{flow.GotoTable{Table: 1}}}
	m := NewModel([]agent.Owned{{Name: "t", Flows: []flow.Flow{a, b, c, back}}})
	var p Packet
	p.Set(flow.FieldInPort, 1)
	p.Set(flow.FieldEthType, uint64(flow.EthTypeIPv4))
	if pr := m.Run(p); len(pr.Steps) != 1 || !pr.Steps[0].Tie || len(pr.Outputs) != 1 {
		t.Errorf("tie not reported: %+v", pr)
	}
	p.Set(flow.FieldInPort, 9)
	p.Set(flow.FieldEthType, 0)
	if pr := m.Run(p); len(pr.Steps) != 1 || pr.Steps[0].Hit != nil || len(pr.Outputs) != 0 {
		t.Errorf("miss: %+v", pr)
	}
	p.Set(flow.FieldInPort, 7)
	if pr := m.Run(p); len(pr.Steps) != 2 || pr.Steps[1].Table != 2 {
		t.Errorf("backward goto_table must end the pipeline: %+v", pr.Steps)
	}
}

// ctStateField is a field the model does not hold (connection tracking).
var ctStateField = flow.DeclareField(flow.FieldSpec{Name: "ct_state", NXMName: "NXM_NX_CT_STATE",
	NXM: flow.MakeHeader(flow.ClassNXM1, 105, 4), Bytes: 4, Masks: flow.AnyMask,
	Format: flow.FlagsFormat{"new", "est", "rel", "rpl", "inv", "trk"}, PrintOrder: 10, WireOrder: 70})

// noteAction is an action the model does not model.
type noteAction struct{}

func (noteAction) String() string                      { return "note:00.00.00.00.00.00" }
func (noteAction) AppendWire(b []byte) ([]byte, error) { return b, nil }
func (noteAction) Check(flow.Match) error              { return nil }

// TestModelRefusesUnmodelled: a flow matching a field the model does not
// hold, or the winning flow running an action it does not model, stops the
// prediction with "cannot evaluate" in the step, the JSON report, the
// differences and the text; a lower-priority such flow below the winner
// does not matter.
func TestModelRefusesUnmodelled(t *testing.T) {
	in1 := flow.NewMatch(flow.FieldInPort.Is(1))
	tracked := flow.Flow{Table: 0, Priority: 10, Match: flow.NewMatch(ctStateField.Masked(0x20, 0x20)),
		Actions: []flow.Action{flow.Output{Port: 3}}}
	tests := []struct {
		name  string
		flows []flow.Flow
		want  string // in CannotEvaluate; "" for a normal prediction
	}{
		{"unmodelled field above", []flow.Flow{tracked, {Table: 0, Priority: 5, Match: in1, Actions: []flow.Action{flow.Output{Port: 2}}}},
			"matches ct_state, which the model does not evaluate"},
		{"unmodelled action", []flow.Flow{{Table: 0, Priority: 5, Match: in1, Actions: []flow.Action{noteAction{}, flow.Output{Port: 2}}}},
			"action note:00.00.00.00.00.00 of the flow that matches is not modelled"},
		{"unmodelled field below the winner", []flow.Flow{{Table: 0, Priority: 20, Match: in1, Actions: []flow.Action{flow.Output{Port: 2}}},
			{Table: 0, Priority: 1, Match: tracked.Match}}, ""},
	}
	var p Packet
	p.Set(flow.FieldInPort, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := NewModel([]agent.Owned{{Name: "t", Flows: tt.flows}}).Run(p)
			last := pr.Steps[len(pr.Steps)-1]
			side := modelSide(pr, p)
			if tt.want == "" {
				if last.CannotEvaluate != "" || side.CannotEvaluate != "" || !slices.Equal(pr.Outputs, []string{"output:2"}) {
					t.Fatalf("refused or wrong: %+v %+v", pr, side)
				}
				return
			}
			if !strings.Contains(last.CannotEvaluate, tt.want) || last.Hit != nil && len(pr.Outputs) != 0 {
				t.Fatalf("step %v, outputs %v", last, pr.Outputs)
			}
			rep := TraceReport{Bridge: "br-int", Model: side, OVS: &TraceSide{Verdict: "output:2"}}
			rep.Differences = differences(rep.Model, *rep.OVS, nil)
			js, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			if err := WriteTraceText(&text, rep); err != nil {
				t.Fatal(err)
			}
			for what, got := range map[string]string{"json": string(js), "text": text.String(), "differences": strings.Join(rep.Differences, "\n")} {
				if !strings.Contains(strings.ToLower(got), "cannot evaluate") || !strings.Contains(got, tt.want) {
					t.Errorf("%s does not say what cannot be evaluated:\n%s", what, got)
				}
			}
			if rep.Agree() || side.Verdict != "cannot evaluate classifier" {
				t.Errorf("agree %v, verdict %q", rep.Agree(), side.Verdict)
			}
		})
	}
}
