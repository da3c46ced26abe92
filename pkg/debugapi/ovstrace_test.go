package debugapi

import (
	"maps"
	"slices"
	"testing"
)

// nestedTrace is the shape of a trace whose packet leaves through a native
// tunnel: the underlay bridge's section is nested, indented by 8.
const nestedTrace = `Flow: icmp,in_port=1,vlan_tci=0x0000,dl_src=0a:58:0a:64:01:0a,dl_dst=0a:58:0a:64:02:0a,nw_src=10.100.1.10,nw_dst=10.100.2.10,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,icmp_type=8,icmp_code=0

bridge("br-int")
----------------
 0. priority 0, cookie 0xfca0010000000000
    goto_table:1
 1. No match.
    drop
 6. priority 0
    output:100
     -> output to native tunnel
     -> tunneling to 192.0.2.2 via br-phy

        bridge("br-phy")
        ----------------
         0. priority 0
            NORMAL
             -> forwarding to learned port
10. priority 7, cookie 0x2
    IN_PORT

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: tnl_push(tnl_port(100)),2
`

func TestParseOVSTrace(t *testing.T) {
	tr, err := ParseOVSTrace(nestedTrace)
	if err != nil {
		t.Fatal(err)
	}
	want := []OVSStep{
		{Table: 0, Matched: true, Priority: 0, Cookie: 0xfca0010000000000, Actions: []string{"goto_table:1"}},
		{Table: 1, Actions: []string{"drop"}},
		{Table: 6, Matched: true, Actions: []string{"output:100"},
			Notes: []string{"-> output to native tunnel", "-> tunneling to 192.0.2.2 via br-phy"}},
		{Table: 10, Matched: true, Priority: 7, Cookie: 2, Actions: []string{"IN_PORT"}},
	}
	if len(tr.Steps) != len(want) {
		t.Fatalf("steps %+v", tr.Steps)
	}
	for i, w := range want {
		g := tr.Steps[i]
		if g.Table != w.Table || g.Matched != w.Matched || g.Priority != w.Priority || g.Cookie != w.Cookie ||
			g.Match != w.Match || !slices.Equal(g.Actions, w.Actions) || !slices.Equal(g.Notes, w.Notes) {
			t.Errorf("step %d: %+v, want %+v", i, g, w)
		}
	}
	if !slices.Equal(tr.Outputs, []string{"output:100", "IN_PORT"}) {
		t.Errorf("outputs %q (NORMAL of the nested bridge must not count)", tr.Outputs)
	}
	if tr.Final != "unchanged" || tr.Datapath != "tnl_push(tnl_port(100)),2" {
		t.Errorf("final %q, datapath %q", tr.Final, tr.Datapath)
	}
	if ch, shown := tr.changedFields(); len(ch) != 0 || !shown["dl_dst"] {
		t.Errorf("unchanged packet: changed %v", ch)
	}
}

func TestParseCapturedTraces(t *testing.T) {
	tests := []struct {
		file    string
		tables  []uint8
		match1  string // the match of the second step
		outputs []string
		changed map[string]string
	}{
		{"arp-range.trace", []uint8{0, 1, 2}, "arp,in_port=1,dl_src=0a:58:0a:01:01:02,arp_spa=10.1.1.2,arp_sha=0a:58:0a:01:01:02",
			[]string{"IN_PORT"}, map[string]string{"reg0": "0x64", "dl_src": "0a:58:0a:01:02:4d", "dl_dst": "0a:58:0a:01:01:02",
				"arp_spa": "10.1.2.77", "arp_tpa": "10.1.1.2", "arp_op": "2", "arp_sha": "0a:58:0a:01:02:4d", "arp_tha": "0a:58:0a:01:01:02"}},
		{"icmp-tunnel.trace", []uint8{0, 1, 5, 6}, "ip,in_port=1,dl_src=0a:58:0a:01:01:02,nw_src=10.1.1.2",
			[]string{"output:100"}, map[string]string{"reg0": "0x64", "reg2": "0xc0000202", "tun_dst": "192.0.2.2"}},
		{"icmp-spoofed.trace", []uint8{0, 1}, "in_port=1", nil, map[string]string{}},
		{"icmp-from-tunnel.trace", []uint8{0, 3, 4, 5}, "tun_src=192.0.2.2",
			[]string{"output:2"}, map[string]string{"reg0": "0x64", "reg1": "0x1", "dl_dst": "02:00:00:00:01:03"}},
	}
	for _, tt := range tests {
		tr, err := ParseOVSTrace(readTestdata(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		var tables []uint8
		for _, s := range tr.Steps {
			tables = append(tables, s.Table)
		}
		if !slices.Equal(tables, tt.tables) || tr.Steps[1].Match != tt.match1 {
			t.Errorf("%s: tables %v, second match %q", tt.file, tables, tr.Steps[1].Match)
		}
		if !slices.Equal(tr.Outputs, tt.outputs) {
			t.Errorf("%s: outputs %q, want %q", tt.file, tr.Outputs, tt.outputs)
		}
		if ch, _ := tr.changedFields(); !maps.Equal(ch, tt.changed) {
			t.Errorf("%s: changed %v, want %v", tt.file, ch, tt.changed)
		}
	}
}

func TestParseOVSTraceRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"Flow: ip\n\nFinal flow: unchanged\n",
		"bridge(\"br-int\")\n----\n 0. something odd\n",
		"bridge(\"br-int\")\n----\n 999. priority 1\n",
		"bridge(\"br-int\")\n----\n",
	} {
		if _, err := ParseOVSTrace(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseOVSTrace(f *testing.F) {
	f.Add(nestedTrace)
	f.Add("bridge(\"x\")\n 0. priority 5\n    output:1\n")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseOVSTrace(s)
		if err == nil {
			tr.changedFields()
			ovsSide(tr)
		}
	})
}
