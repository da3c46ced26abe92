package e2e

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

const agCookieFilter = "cookie=0xfca0000000000000/0xffff000000000000"

// agFlowCount counts the agent's flows in OVS with ovs-ofctl; a failed
// dump fails the test (an observer that cannot see proves nothing).
func agFlowCount(t *testing.T, n *testbed.Node) int {
	t.Helper()
	c, err := agFlowCountErr(n)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agFlowCountErr is agFlowCount for polling while OVS may be down.
func agFlowCountErr(n *testbed.Node) (int, error) {
	out, err := n.OfctlErr("dump-flows", "br-int", agCookieFilter)
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "cookie=0xfca0"), nil
}

// TestAgentRestartLosesNoPackets restarts the agent under a 100 pps ping
// across the GRE tunnel, by SIGTERM and by SIGKILL: no packet may be lost,
// and the restarted agent finds every flow right and sends no flow_mod.
func TestAgentRestartLosesNoPackets(t *testing.T) {
	tp := agSetup(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			before := agFlowCount(t, tp.a)
			sent, recv := pingDuring(t, tp.ca, tp.cb.Addr.Addr(), "0.01", func() {
				tp.pa.Stop(sig)
				if n := agFlowCount(t, tp.a); n != before {
					t.Errorf("flows changed while the agent was down: %d -> %d", before, n)
				}
				time.Sleep(2 * time.Second) // the datapath forwards alone
				tp.pa.Start(t)
				tp.pa.WaitReady(t, 15*time.Second)
			})
			t.Logf("%s: %d sent, %d received", sig, sent, recv)
			if sent < 100 || recv != sent {
				t.Fatalf("%s: %d sent, %d received: packets lost", sig, sent, recv)
			}
			if n := tp.pa.Metric(t, "ofctl_agent_flow_mods_total"); n != 0 {
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
	want := agFlowCount(t, tp.a)
	var start time.Time
	var back time.Duration
	ping := pingRun(t, tp.ca, tp.cb.Addr.Addr(), "0.01", func() {
		tp.a.KillVswitchd(t)
		start = time.Now()
		tp.a.StartVswitchd(t)
		testbed.Eventually(t, 10*time.Second, func() bool { n, err := agFlowCountErr(tp.a); return err == nil && n == want },
			"pipeline not back")
		back = time.Since(start)
		testbed.Eventually(t, 20*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok }, "ping not back")
	})
	// The agent's own connection, not those /metrics and /debug/flows read with.
	connected := tp.pa.Logged(t, `msg="openflow connected"`, start, "connection=metrics", "connection=debug")
	synced := tp.pa.Logged(t, `msg="pipeline synchronised"`, connected.At)
	if added := synced.Attr("added"); added != strconv.Itoa(want) {
		t.Fatalf("first Sync after the reconnection added %s flows, want %d: %s", added, want, synced.Line)
	}
	t.Logf("vswitchd restart: agent reconnected %v after ovs-vswitchd was started; its Sync put the %d flows back %v after "+
		"the reconnection (ovs-ofctl saw them %v after the start); ping: no reply for %v (vswitchd down included), "+
		"%d of %d echoes lost", connected.At.Sub(start).Round(time.Millisecond), want,
		synced.At.Sub(connected.At).Round(time.Millisecond), back.Round(time.Millisecond), ping.gap.Round(time.Millisecond),
		ping.sent-ping.recv, ping.sent)
	if n := tp.pa.Metric(t, "ofctl_agent_openflow_reconnects_total"); n < 1 {
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
	want := agFlowCount(t, tp.a)
	tp.a.Vsctl(t, "set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true")
	tp.a.KillVswitchd(t)
	start := time.Now()
	tp.a.StartVswitchd(t)
	restoreWait := func() bool {
		return strings.Contains(tp.a.Vsctl(t, "get", "Open_vSwitch", ".", "other_config"), "flow-restore-wait")
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return !restoreWait() }, "flow-restore-wait not cleared")
	if got := agFlowCount(t, tp.a); got != want {
		t.Fatalf("flow-restore-wait cleared while OVS held %d of the %d flows", got, want)
	}
	synced := tp.pa.Logged(t, `msg="pipeline synchronised"`, start)
	cleared := tp.pa.Logged(t, `msg="flow-restore-wait cleared`, start)
	if added := synced.Attr("added"); added != strconv.Itoa(want) || cleared.At.Before(synced.At) {
		t.Fatalf("want the Sync of all %d flows before the flag is cleared; got:\n%s\n%s", want, synced.Line, cleared.Line)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok },
		"ping does not work after flow-restore-wait was cleared")
	t.Logf("flow-restore-wait: pipeline synchronised %v and flag cleared %v after ovs-vswitchd was started",
		synced.At.Sub(start).Round(time.Millisecond), cleared.At.Sub(start).Round(time.Millisecond))
}

// TestAgentRepairsOutOfBandChanges: flows deleted or added by hand, the
// fail mode changed, the GRE port deleted: each is put back within 2 s.
func TestAgentRepairsOutOfBandChanges(t *testing.T) {
	tp := agSetup(t)
	n := tp.a
	want := agFlowCount(t, n)
	cases := []struct {
		name   string
		change func()
		fixed  func() bool
	}{
		{"del-flows", func() { n.Ofctl(t, "del-flows", "br-int") }, func() bool { return agFlowCount(t, n) == want }},
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
				return strings.Contains(out, "100(gre0)") && agFlowCount(t, n) == want
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
	before := agFlowCount(t, tp.b)
	tp.b.Vsctl(t, "del-port", "br-int", tp.cb.HostIf)
	testbed.Eventually(t, 2*time.Second, func() bool { return agFlowCount(t, tp.b) == before-5 },
		"endpoint flows not removed: %d flows, want %d", agFlowCount(t, tp.b), before-5)
	tp.ca.NoAnswer(t, tp.cb.Addr.Addr(), 1) // agSetup's ping on the same path was answered

}
