package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

const agCookieFilter = "cookie=0xfca0000000000000/0xffff000000000000"

func agFlowCount(n *testbed.Node) int {
	out, err := n.OfctlErr("dump-flows", "br-int", agCookieFilter)
	if err != nil {
		return -1
	}
	return strings.Count(out, "cookie=0xfca0")
}

// agMetric reads one unlabelled sample from the agent's /metrics.
func agMetric(t *testing.T, p *agProc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("metric %s not found", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestAgentRestartLosesNoPackets restarts the agent under a 100 pps ping
// across the GRE tunnel, by SIGTERM and by SIGKILL: no packet may be lost,
// and the restarted agent finds every flow right and sends no flow_mod.
func TestAgentRestartLosesNoPackets(t *testing.T) {
	tp := agSetup(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			before := agFlowCount(tp.a)
			sent, recv := pingDuring(t, tp.ca, tp.cb.Addr.Addr(), "0.01", func() {
				tp.pa.kill(sig)
				if n := agFlowCount(tp.a); n != before {
					t.Errorf("flows changed while the agent was down: %d -> %d", before, n)
				}
				time.Sleep(2 * time.Second) // the datapath forwards alone
				tp.pa.start(t)
			})
			t.Logf("%s: %d sent, %d received", sig, sent, recv)
			if sent < 100 || recv != sent {
				t.Fatalf("%s: %d sent, %d received: packets lost", sig, sent, recv)
			}
			if n := agMetric(t, tp.pa, "ofctl_agent_flow_mods_total"); n != 0 {
				t.Fatalf("restarted agent sent %v flow_mods; all %d flows were already right", n, before)
			}
		})
	}
}

// TestAgentVswitchdRestart kills ovs-vswitchd (all flows gone) and measures
// how long after its restart the pipeline is complete and ping works again.
func TestAgentVswitchdRestart(t *testing.T) {
	tp := agSetup(t)
	want := agFlowCount(tp.a)
	tp.a.KillVswitchd(t)
	start := time.Now()
	tp.a.StartVswitchd(t)
	back := testbed.Eventually(t, 10*time.Second, func() bool { return agFlowCount(tp.a) == want }, "pipeline not back")
	t.Logf("vswitchd restart: %d flows back %v after ovs-vswitchd started", want, back)
	pingBack := testbed.Eventually(t, 20*time.Second, func() bool {
		ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1)
		return ok
	}, "ping not back")
	t.Logf("vswitchd restart: ping works again %v after ovs-vswitchd started", time.Since(start)-0*pingBack)
	if n := agMetric(t, tp.pa, "ofctl_agent_openflow_reconnects_total"); n < 1 {
		t.Fatalf("reconnects_total = %v", n)
	}
}

// TestAgentRepairsOutOfBandChanges: flows deleted or added by hand, the
// fail mode changed, the GRE port deleted: each is put back within 2 s.
func TestAgentRepairsOutOfBandChanges(t *testing.T) {
	tp := agSetup(t)
	n := tp.a
	want := agFlowCount(n)
	cases := []struct {
		name   string
		change func()
		fixed  func() bool
	}{
		{"del-flows", func() { n.Ofctl(t, "del-flows", "br-int") }, func() bool { return agFlowCount(n) == want }},
		{"rogue flow", func() { n.Ofctl(t, "add-flow", "br-int", "table=5,priority=999,actions=drop") },
			func() bool { return !strings.Contains(n.Ofctl(t, "dump-flows", "br-int", "table=5"), "priority=999") }},
		{"actions modified", func() { n.Ofctl(t, "mod-flows", "br-int", "table=6,actions=drop") },
			func() bool { return strings.Contains(n.Ofctl(t, "dump-flows", "br-int", "table=6"), "output:100") }},
		{"fail_mode standalone", func() { n.Vsctl(t, "set-fail-mode", "br-int", "standalone") },
			func() bool { return strings.TrimSpace(n.Vsctl(t, "get", "bridge", "br-int", "fail_mode")) == "secure" }},
		{"GRE port deleted", func() { n.Vsctl(t, "del-port", "br-int", "gre0") },
			func() bool {
				out, _ := n.OfctlErr("dump-ports-desc", "br-int")
				return strings.Contains(out, "100(gre0)") && agFlowCount(n) == want
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.change()
			took := testbed.Eventually(t, 2*time.Second, c.fixed, "%s not repaired", c.name)
			t.Logf("%s repaired in %v", c.name, took)
			testbed.Eventually(t, 5*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok },
				"ping broken after repairing %s", c.name)
		})
	}
}

// TestAgentEndpointRemoved: deleting a container's port removes its flows.
func TestAgentEndpointRemoved(t *testing.T) {
	tp := agSetup(t)
	before := agFlowCount(tp.b)
	tp.b.Vsctl(t, "del-port", "br-int", tp.cb.HostIf)
	testbed.Eventually(t, 2*time.Second, func() bool { return agFlowCount(tp.b) == before-5 },
		"endpoint flows not removed: %d flows, want %d", agFlowCount(tp.b), before-5)
	if ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); ok {
		t.Fatal("ping still works after the port was removed")
	}
}
