package e2e

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
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

// TestAgentVswitchdRestart kills ovs-vswitchd (all flows gone) under a
// continuous ping (100 per second) and starts it again. The agent's first
// Sync after the reconnection must install the whole pipeline; the test
// reports how long after the start the agent reconnected and the pipeline
// was back, and how long the ping was broken (the longest gap between two
// replies, the time ovs-vswitchd was down included).
func TestAgentVswitchdRestart(t *testing.T) {
	tp := agSetup(t)
	want := agFlowCount(tp.a)
	var start time.Time
	var back time.Duration
	ping := pingRun(t, tp.ca, tp.cb.Addr.Addr(), "0.01", func() {
		tp.a.KillVswitchd(t)
		start = time.Now()
		tp.a.StartVswitchd(t)
		testbed.Eventually(t, 10*time.Second, func() bool { return agFlowCount(tp.a) == want }, "pipeline not back")
		back = time.Since(start)
		testbed.Eventually(t, 20*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok }, "ping not back")
	})
	// The agent's own connection, not those /metrics and /debug/flows read with.
	connected := tp.pa.logged(t, `msg="openflow connected"`, start, "connection=metrics", "connection=debug")
	synced := tp.pa.logged(t, `msg="pipeline synchronised"`, connected.at)
	if added := synced.attr("added"); added != strconv.Itoa(want) {
		t.Fatalf("first Sync after the reconnection added %s flows, want %d: %s", added, want, synced.line)
	}
	t.Logf("vswitchd restart: agent reconnected %v after ovs-vswitchd was started; its Sync put the %d flows back %v after "+
		"the reconnection (ovs-ofctl saw them %v after the start); ping: no reply for %v (vswitchd down included), "+
		"%d of %d echoes lost", connected.at.Sub(start).Round(time.Millisecond), want,
		synced.at.Sub(connected.at).Round(time.Millisecond), back.Round(time.Millisecond), ping.gap.Round(time.Millisecond),
		ping.sent-ping.recv, ping.sent)
	if n := agMetric(t, tp.pa, "ofctl_agent_openflow_reconnects_total"); n < 1 {
		t.Fatalf("reconnects_total = %v", n)
	}
}

// TestAgentClearsFlowRestoreWait: an operator sets flow-restore-wait and
// restarts ovs-vswitchd (the hot-restart procedure). The new ovs-vswitchd
// handles no packet until the flag is cleared; the agent clears it only
// after its Sync has put the whole pipeline back, and traffic resumes. The
// order is checked in OVS (the first time the flag is seen gone, every flow
// is there) and in the agent's log.
func TestAgentClearsFlowRestoreWait(t *testing.T) {
	tp := agSetup(t)
	want := agFlowCount(tp.a)
	tp.a.Vsctl(t, "set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true")
	tp.a.KillVswitchd(t)
	start := time.Now()
	tp.a.StartVswitchd(t)
	restoreWait := func() bool {
		return strings.Contains(tp.a.Vsctl(t, "get", "Open_vSwitch", ".", "other_config"), "flow-restore-wait")
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return !restoreWait() }, "flow-restore-wait not cleared")
	if got := agFlowCount(tp.a); got != want {
		t.Fatalf("flow-restore-wait cleared while OVS held %d of the %d flows", got, want)
	}
	synced := tp.pa.logged(t, `msg="pipeline synchronised"`, start)
	cleared := tp.pa.logged(t, `msg="flow-restore-wait cleared`, start)
	if added := synced.attr("added"); added != strconv.Itoa(want) || cleared.at.Before(synced.at) {
		t.Fatalf("want the Sync of all %d flows before the flag is cleared; got:\n%s\n%s", want, synced.line, cleared.line)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok },
		"ping does not work after flow-restore-wait was cleared")
	t.Logf("flow-restore-wait: pipeline synchronised %v and flag cleared %v after ovs-vswitchd was started",
		synced.at.Sub(start).Round(time.Millisecond), cleared.at.Sub(start).Round(time.Millisecond))
}

// logLine is one line of an agent's text log.
type logLine struct {
	at   time.Time
	line string
}

// attr returns the value of an unquoted key=value in the line ("" if
// absent).
func (l logLine) attr(key string) string {
	for _, f := range strings.Fields(l.line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// logged returns the first line of the agent's log containing substr (and
// none of not) stamped at or after since, waiting up to 5 s for it.
func (p *agProc) logged(t *testing.T, substr string, since time.Time, not ...string) logLine {
	t.Helper()
	var found logLine
	testbed.Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(p.log.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, substr) || slices.ContainsFunc(not, func(s string) bool { return strings.Contains(line, s) }) {
				continue
			}
			l := logLine{line: line}
			at, err := time.Parse(time.RFC3339Nano, l.attr("time"))
			if err == nil && !at.Before(since) {
				l.at = at
				found = l
				return true
			}
		}
		return false
	}, "agent never logged %s after %v", substr, since)
	return found
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
		{"rogue flow", func() { n.Ofctl(t, "add-flow", "br-int", ofTable(pipeline.L2Forward)+",priority=999,actions=drop") },
			func() bool {
				return !strings.Contains(n.Ofctl(t, "dump-flows", "br-int", ofTable(pipeline.L2Forward)), "priority=999")
			}},
		{"actions modified", func() { n.Ofctl(t, "mod-flows", "br-int", ofTable(pipeline.TunnelEgress)+",actions=drop") },
			func() bool {
				return strings.Contains(n.Ofctl(t, "dump-flows", "br-int", ofTable(pipeline.TunnelEgress)), "output:100")
			}},
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
