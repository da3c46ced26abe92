package debugapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// replay is an ofproto/trace stand-in answering with text, recording the
// packet it was asked about.
func replay(text string, err error, asked *string) func(context.Context, string, string) (string, error) {
	return func(_ context.Context, bridge, packet string) (string, error) {
		*asked = bridge + " " + packet
		return text, err
	}
}

func traceJSON(t *testing.T, query string, tracer func(context.Context, string, string) (string, error)) TraceReport {
	t.Helper()
	rec := get(t, "/debug/trace?format=json&"+query, tracer)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var r TraceReport
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTraceAgrees(t *testing.T) {
	var asked string
	r := traceJSON(t, "in_port=vblue-a&nw_dst=10.1.2.5", replay(readTestdata(t, "icmp-tunnel.trace"), nil, &asked))
	want := "br-int icmp,in_port=1,dl_src=0a:58:0a:01:01:02,dl_dst=0a:58:0a:01:02:05,nw_src=10.1.1.2,nw_dst=10.1.2.5,nw_ttl=64,icmp_type=8,icmp_code=0"
	if asked != want {
		t.Errorf("ofproto/trace asked for %q, want %q", asked, want)
	}
	if !r.Agree() || len(r.Differences) != 0 || r.OVS == nil {
		t.Fatalf("differences %q, ovs error %q", r.Differences, r.OVSError)
	}
	if r.Model.Verdict != "output:100" || r.OVS.Verdict != "output:100" || r.Model.Changed["tun_dst"] != "192.0.2.2" {
		t.Errorf("verdicts %q / %q, changed %v", r.Model.Verdict, r.OVS.Verdict, r.Model.Changed)
	}
	if r.Model.Steps[2].TableName != "l2_forward" || r.Model.Steps[2].Owner != "host h2" || r.DatapathActions != "drop" {
		t.Errorf("step %+v, datapath %q", r.Model.Steps[2], r.DatapathActions)
	}
	rec := get(t, "/debug/trace?in_port=vblue-a&nw_dst=10.1.2.5", replay(readTestdata(t, "icmp-tunnel.trace"), nil, &asked))
	for _, s := range []string{" 5 l2_forward     same     priority=124,reg0=0x64", "[host h2]", "AGREE", "model: output:100; rewrites reg0=0x64,reg2=0xc0000202,tun_dst=192.0.2.2,tun_id=0x64"} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, rec.Body)
		}
	}
}

func TestTraceFlagsDifferences(t *testing.T) {
	var asked string
	// OVS runs a tampered l2_forward flow: actions=drop instead of the tunnel.
	text := readTestdata(t, "icmp-tunnel.trace")
	cut := strings.Index(text, "    set_field:0xc0000202->reg2")
	end := strings.Index(text, "\nFinal flow:")
	tampered := text[:cut] + "    drop\n" + text[end:]
	r := traceJSON(t, "in_port=vblue-a&nw_dst=10.1.2.5", replay(tampered, nil, &asked))
	if r.Agree() {
		t.Fatal("tampered trace agrees")
	}
	joined := strings.Join(r.Differences, "\n")
	l2, egress := pipeline.L2Forward.ID(), pipeline.TunnelEgress.ID()
	for _, s := range []string{fmt.Sprintf("table %d l2_forward: same flow, actions set_field:0xc0000202->reg2,goto_table:%d desired, drop in OVS", l2, egress),
		fmt.Sprintf("the model continues to table %d tunnel_egress", egress), "outputs: model output:100, OVS none"} {
		if !strings.Contains(joined, s) {
			t.Errorf("differences lack %q:\n%s", s, joined)
		}
	}
	rec := get(t, "/debug/trace?in_port=vblue-a&nw_dst=10.1.2.5", replay(tampered, nil, &asked))
	for _, s := range []string{fmt.Sprintf("%2d l2_forward     DIFFERENT", pipeline.L2Forward.ID()), "OVS:   priority=124,", "actions=drop",
		fmt.Sprintf("%2d tunnel_egress  DIFFERENT", pipeline.TunnelEgress.ID()), "(not reached)", "DIFFER ("} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, rec.Body)
		}
	}
}

func TestTraceWithoutOVS(t *testing.T) {
	var asked string
	for _, tr := range []struct {
		text string
		err  error
		want string
	}{
		{"", errors.New("unixctl: dial unix /x: no such file"), "ofproto/trace: unixctl: dial"},
		{"garbage", nil, "no bridge section"},
	} {
		r := traceJSON(t, "in_port=vblue-a&arp_tpa=10.1.1.3", replay(tr.text, tr.err, &asked))
		if r.OVS != nil || !strings.Contains(r.OVSError, tr.want) || r.Agree() || r.Model.Verdict != "IN_PORT" {
			t.Errorf("ovs %v, error %q, verdict %q", r.OVS, r.OVSError, r.Model.Verdict)
		}
		rec := get(t, "/debug/trace?in_port=vblue-a&arp_tpa=10.1.1.3", replay(tr.text, tr.err, &asked))
		if !strings.Contains(rec.Body.String(), "NOT COMPARED: ") || !strings.Contains(rec.Body.String(), " model    ") {
			t.Errorf("text:\n%s", rec.Body)
		}
	}
}
