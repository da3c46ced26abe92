package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/debugapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestDebugAPI checks /debug/flows and /debug/trace, and the dump-flows and
// trace commands, against the real agent and OVS. Agent a runs without the
// flow monitor and with a 1h drift check so that rogue and tampered flows
// stay until a restart repairs them (the Sync after connecting).
func TestDebugAPI(t *testing.T) {
	tp := agSetup(t)
	p := tp.pa
	p.Stop(syscall.SIGTERM)
	p.Args = append(p.Args, "--flow-monitor=false", "--verify-interval", "1h", "--vswitchd-ctl", tp.a.VswitchdCtl())
	p.Start(t)
	p.WaitReady(t, 15*time.Second)

	t.Run("flows are what ovs-ofctl lists", func(t *testing.T) {
		dbgSameAsOfctl(t, tp.a, dbgFlows(t, p, ""))
	})
	t.Run("rogue flow unexpected until repaired", func(t *testing.T) {
		tp.a.Ofctl(t, "add-flow", "br-int", ofTable(pipeline.L2Forward)+",priority=300,dl_dst=0a:58:0a:64:02:0a,actions=drop")
		rogue := ofTable(pipeline.L2Forward) + ", priority=300,dl_dst=0a:58:0a:64:02:0a actions=drop"
		r := dbgFlows(t, p, "status=unexpected")
		es := dbgEntries(r)
		if len(es) != 1 || es[0].Flow != rogue ||
			!strings.Contains(es[0].Note, "foreign cookie") {
			t.Fatalf("unexpected flows: %+v", es)
		}
		dbgSameAsOfctl(t, tp.a, dbgFlows(t, p, ""))
		if code, out := dbgCLI(t, "dump-flows", "--listen", p.Listen, "--table", "l2_forward"); code != 1 ||
			!strings.Contains(out, "UNEXPECTED") || !strings.Contains(out, rogue) {
			t.Errorf("dump-flows with a rogue flow: exit %d\n%s", code, out)
		}
		dbgRestart(t, p)
		if r := dbgFlows(t, p, ""); r.Problems() != 0 {
			t.Errorf("after the repair: %v", r.Summary)
		}
		if code, out := dbgCLI(t, "dump-flows", "--listen", p.Listen); code != 0 || !strings.Contains(out, "0 UNEXPECTED") {
			t.Errorf("dump-flows after the repair: exit %d\n%s", code, out)
		}
	})
	arp := url.Values{"in_port": {"vca"}, "arp_tpa": {"10.100.2.10"}}
	icmp := url.Values{"in_port": {"vca"}, "icmp": {""}, "nw_dst": {"10.100.2.10"}}
	t.Run("traces agree with ofproto/trace", func(t *testing.T) {
		r := dbgTrace(t, p, arp)
		if !r.Agree() || r.Model.Verdict != "IN_PORT" || r.Model.Changed["arp_sha"] != "0a:58:0a:64:02:0a" {
			t.Errorf("ARP: differences %q, ovs error %q, model %+v\n%s", r.Differences, r.OVSError, r.Model, r.OVSText)
		}
		r = dbgTrace(t, p, icmp)
		if !r.Agree() || r.Model.Verdict != "output:100" || r.Model.Changed["tun_dst"] != "192.0.2.2" ||
			!strings.Contains(r.DatapathActions, "tnl_push") {
			t.Errorf("ICMP: differences %q, ovs error %q, model %+v\n%s", r.Differences, r.OVSError, r.Model, r.OVSText)
		}
		if code, out := dbgCLI(t, "trace", "--listen", p.Listen, "icmp,in_port=vca", "nw_dst=10.100.2.10"); code != 0 ||
			!strings.Contains(out, "AGREE") || !strings.Contains(out, "l2_forward     same") {
			t.Errorf("trace command: exit %d\n%s", code, out)
		}
	})
	t.Run("tampered flow makes the trace differ", func(t *testing.T) {
		es := dbgEntries(dbgFlows(t, p, "table=l2_forward&endpoint=10.100.2.10"))
		if len(es) != 1 {
			t.Fatalf("flows towards hb's range: %+v", es)
		}
		_, spec, _ := strings.Cut(es[0].Flow, ", ") // drop the cookie
		spec, _, _ = strings.Cut(spec, " actions=")
		tp.a.Ofctl(t, "--strict", "mod-flows", "br-int", spec+",actions=drop")
		r := dbgTrace(t, p, icmp)
		if r.Agree() || !slices.ContainsFunc(r.Differences, func(d string) bool {
			return strings.HasPrefix(d, fmt.Sprintf("table %d l2_forward: same flow, actions set_field:0xc0000202->reg2,goto_table:%d desired, drop in OVS", pipeline.L2Forward.ID(), pipeline.TunnelEgress.ID()))
		}) {
			t.Errorf("tampered: differences %q\n%s", r.Differences, r.OVSText)
		}
		if es := dbgEntries(dbgFlows(t, p, "status=different")); len(es) != 1 || !strings.HasSuffix(es[0].Flow, "actions=drop") {
			t.Errorf("different flows: %+v", es)
		}
		if code, out := dbgCLI(t, "trace", "--listen", p.Listen, "in_port=vca", "icmp", "nw_dst=10.100.2.10"); code != 1 ||
			!strings.Contains(out, "DIFFER (") {
			t.Errorf("trace command on a tampered flow: exit %d\n%s", code, out)
		}
		dbgRestart(t, p)
		if r := dbgTrace(t, p, icmp); !r.Agree() {
			t.Errorf("after the repair: %q", r.Differences)
		}
	})
	t.Run("bad queries", func(t *testing.T) {
		if code, out := dbgCLI(t, "dump-flows", "--listen", p.Listen, "--table", "nope"); code != 2 || !strings.Contains(out, "table: \"nope\"") {
			t.Errorf("bad table: exit %d\n%s", code, out)
		}
		if code, out := dbgCLI(t, "trace", "--listen", p.Listen, "in_port=nosuch", "arp_tpa=10.100.2.10"); code != 2 ||
			!strings.Contains(out, "nosuch") {
			t.Errorf("bad port: exit %d\n%s", code, out)
		}
	})
}

// dbgRestart restarts the agent: its Sync after connecting repairs drift.
func dbgRestart(t *testing.T, p *testbed.Agent) {
	t.Helper()
	p.Restart(t)
}

func dbgGet(t *testing.T, p *testbed.Agent, path string, q string) []byte {
	t.Helper()
	code, b, err := p.Get(path + "?format=json&" + q)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s?%s: %d %v: %s", path, q, code, err, b)
	}
	return b
}

func dbgFlows(t *testing.T, p *testbed.Agent, q string) debugapi.FlowsReport {
	t.Helper()
	var r debugapi.FlowsReport
	if err := json.Unmarshal(dbgGet(t, p, "/debug/flows", q), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func dbgTrace(t *testing.T, p *testbed.Agent, q url.Values) debugapi.TraceReport {
	t.Helper()
	var r debugapi.TraceReport
	if err := json.Unmarshal(dbgGet(t, p, "/debug/trace", q.Encode()), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func dbgEntries(r debugapi.FlowsReport) []debugapi.FlowEntry {
	var out []debugapi.FlowEntry
	for _, t := range r.Tables {
		out = append(out, t.Flows...)
	}
	return out
}

// dbgSameAsOfctl: the flows /debug/flows shows in OVS are exactly those
// ovs-ofctl dump-flows lists, with the same text.
func dbgSameAsOfctl(t *testing.T, n *testbed.Node, r debugapi.FlowsReport) {
	t.Helper()
	var ofctl, ours []string
	for _, l := range strings.Split(n.Ofctl(t, "dump-flows", "br-int", "--no-stats"), "\n") {
		if strings.HasPrefix(l, " ") {
			ofctl = append(ofctl, strings.TrimPrefix(l, " "))
		}
	}
	for _, e := range dbgEntries(r) {
		if e.Status != debugapi.StatusMissing {
			ours = append(ours, e.Flow)
		}
	}
	slices.Sort(ofctl)
	slices.Sort(ours)
	if len(ofctl) < 10 || !slices.Equal(ofctl, ours) {
		t.Errorf("/debug/flows lists %d flows, ovs-ofctl %d:\nours:\n%s\novs-ofctl:\n%s", len(ours), len(ofctl),
			strings.Join(ours, "\n"), strings.Join(ofctl, "\n"))
	}
}

// dbgCLI runs the ofctl-agent binary and returns its exit status and
// combined output.
func dbgCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(testbed.AgentBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("%v: %v", args, err)
	return -1, ""
}
