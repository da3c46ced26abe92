package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/debugapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// fakeAgent serves canned /debug answers and records the last query.
type fakeAgent struct {
	flows debugapi.FlowsReport
	trace debugapi.TraceReport
	query url.Values
}

func (f *fakeAgent) start(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	answer := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.query = r.URL.Query()
			if f.query.Get("table") == "nope" || f.query.Get("in_port") == "nosuch" {
				http.Error(w, "bad request: table: \"nope\": want a table", http.StatusBadRequest)
				return
			}
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	mux.Handle("GET /debug/flows", answer(&f.flows))
	mux.Handle("GET /debug/trace", answer(&f.trace))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDumpFlowsCommand(t *testing.T) {
	l2 := pipeline.L2Forward
	miss := fmt.Sprintf("table=%d, priority=0 actions=drop", l2.ID())
	f := &fakeAgent{flows: debugapi.FlowsReport{Bridge: "br-int", Summary: map[string]int{"expected": 1},
		Tables: []debugapi.TableFlows{{Table: l2.ID(), Name: string(l2), Flows: []debugapi.FlowEntry{
			{Status: "expected", Table: l2.ID(), Flow: miss, Owner: "fixed"}}}}}}
	addr := f.start(t)
	code, out, errs := runCmd("dump-flows", "--listen", addr, "--table", string(l2), "--status", "expected,missing", "--port", "vca")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("table %d %s (1 flow)", l2.ID(), l2)) || !strings.Contains(out, miss) {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if f.query.Get("table") != string(l2) || f.query.Get("status") != "expected,missing" || f.query.Get("port") != "vca" ||
		f.query.Get("format") != "json" || f.query.Has("network") {
		t.Errorf("query %v", f.query)
	}
	f.flows.Summary["unexpected"] = 1
	if code, out, _ := runCmd("dump-flows", "--listen", "http://"+addr+"/", "--json"); code != 1 || !strings.Contains(out, `"unexpected":1`) {
		t.Errorf("with an unexpected flow: exit %d\n%s", code, out)
	}
}

func TestTraceCommand(t *testing.T) {
	f := &fakeAgent{trace: debugapi.TraceReport{Bridge: "br-int", Packet: "arp,in_port=1",
		Model: debugapi.TraceSide{Verdict: "IN_PORT"}, OVS: &debugapi.TraceSide{Verdict: "IN_PORT"}, Differences: []string{}}}
	addr := f.start(t)
	code, out, errs := runCmd("trace", "--listen", addr, "arp,in_port=vca", "arp_tpa=10.0.0.2")
	if code != 0 || !strings.Contains(out, "AGREE") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if want := (url.Values{"arp": {""}, "in_port": {"vca"}, "arp_tpa": {"10.0.0.2"}, "format": {"json"}}); f.query.Encode() != want.Encode() {
		t.Errorf("query %v, want %v", f.query, want)
	}
	diff := fmt.Sprintf("table %d: other", pipeline.L2Forward.ID())
	f.trace.Differences = []string{diff}
	if code, out, _ := runCmd("trace", "--listen", addr, "in_port=1,nw_dst=10.0.0.2"); code != 1 || !strings.Contains(out, "- "+diff) {
		t.Errorf("with a difference: exit %d\n%s", code, out)
	}
	f.trace.OVS, f.trace.OVSError = nil, "ofproto/trace: no socket"
	if code, out, _ := runCmd("trace", "--listen", addr, "in_port=1,nw_dst=10.0.0.2"); code != 3 || !strings.Contains(out, "NOT COMPARED: ofproto/trace: no socket") {
		t.Errorf("without OVS: exit %d\n%s", code, out)
	}
}

func TestDebugCommandErrors(t *testing.T) {
	addr := (&fakeAgent{}).start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dump-flows", "--listen", addr, "--table", "nope"}, 2, "the agent refused the query: bad request: table"},
		{[]string{"dump-flows", "--listen", addr, "extra"}, 2, "unexpected arguments: extra"},
		{[]string{"dump-flows", "--bogus"}, 2, "bogus"},
		{[]string{"dump-flows", "--listen", dead}, 3, "cannot reach the agent at " + dead},
		{[]string{"trace", "--listen", addr}, 2, "no packet"},
		{[]string{"trace", "--listen", addr, "in_port=nosuch", "arp_tpa=1.2.3.4"}, 2, "refused the query"},
		{[]string{"trace", "--listen", addr, "in_prot=1"}, 2, "unknown field \"in_prot\""},
		{[]string{"trace", "--listen", addr, "format=json"}, 2, "unknown field \"format\""},
		{[]string{"trace", "--listen", addr, "in_port=1,in_port=2"}, 2, "in_port given twice"},
		{[]string{"trace", "--listen", addr, "nw_dst"}, 2, "needs a value"},
		{[]string{"trace", "--listen", dead, "in_port=1"}, 3, "cannot reach the agent"},
		{[]string{"dump-flows", "-h"}, 0, "Exit status: 0 every listed flow is as desired; 1"},
		{[]string{"trace", "-h"}, 0, "Exit status: 0 OVS does what"},
	}
	for _, tt := range tests {
		code, _, errs := runCmd(tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}
