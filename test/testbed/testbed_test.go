package testbed

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestTwoNodesGRE proves the bed itself: two nodes with their own OVS, an
// underlay, and hand-written flows (no agent) carrying a ping across GRE with
// a flow-based tunnel port.
func TestTwoNodesGRE(t *testing.T) {
	a, b := NewNode(t, "ha"), NewNode(t, "hb")
	Underlay(t, a, b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	ca := addGREHost(t, a, "ca", "10.250.0.1/24", "192.0.2.2")
	cb := addGREHost(t, b, "cb", "10.250.0.2/24", "192.0.2.1")
	// Static neighbours: this test is about the tunnel, not ARP.
	ca.Exec(t, "ip", "neigh", "add", cb.Addr.Addr().String(), "lladdr", cb.MAC.String(), "dev", "eth0")
	cb.Exec(t, "ip", "neigh", "add", ca.Addr.Addr().String(), "lladdr", ca.MAC.String(), "dev", "eth0")

	if ok, out := ca.Ping(cb.Addr.Addr(), 3); !ok {
		t.Fatalf("ping across GRE failed:\n%s\nflows a:\n%s\nflows b:\n%s", out,
			a.Ofctl(t, "dump-flows", "br-int"), b.Ofctl(t, "dump-flows", "br-int"))
	}
	// Independent check: the GRE flow really carried the packets.
	flows := a.Ofctl(t, "dump-flows", "br-int", "in_port=1")
	if !strings.Contains(flows, "n_packets=") || strings.Contains(flows, "n_packets=0,") {
		t.Fatalf("tunnel ingress flow saw no packets:\n%s", flows)
	}
}

func addGREHost(t *testing.T, n *Node, name, addr, peer string) *Container {
	n.AddBridge(t, "br-int")
	n.Vsctl(t, "add-port", "br-int", "gre0", "--", "set", "interface", "gre0", "type=gre",
		"options:remote_ip=flow", "options:key=flow", "ofport_request=1")
	c := n.AddContainer(t, name, ContainerOpts{Addr: netip.MustParsePrefix(addr)})
	c.AttachTo(t, "br-int", 2, map[string]string{"test": "yes"})
	n.Ofctl(t, "add-flow", "br-int", "in_port=2,actions=set_field:"+peer+"->tun_dst,set_field:7->tun_id,output:1")
	n.Ofctl(t, "add-flow", "br-int", "in_port=1,tun_id=7,actions=output:2")
	return c
}

func TestOwnerPid(t *testing.T) {
	cases := []struct {
		name string
		want int
	}{
		{fmt.Sprintf("ofat-%d-abcdef-x", os.Getpid()), os.Getpid()},
		{"ofat-12-aa-b", 12},
		{"other-12-aa", 0},
		{"ofat-x-aa", 0},
	}
	for _, c := range cases {
		if got := ownerPid(c.name); got != c.want {
			t.Errorf("ownerPid(%q) = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestRestartVswitchd(t *testing.T) {
	n := NewNode(t, "hr")
	n.AddBridge(t, "br-int")
	n.Ofctl(t, "add-flow", "br-int", "priority=5,actions=drop")
	old := n.VswitchdPid()
	n.KillVswitchd(t)
	n.StartVswitchd(t)
	if n.VswitchdPid() == old || n.VswitchdPid() == 0 {
		t.Fatalf("vswitchd pid %d after restart (was %d)", n.VswitchdPid(), old)
	}
	n.waitSocket(t, "br-int.mgmt")
	if out := n.Ofctl(t, "dump-flows", "br-int"); strings.Contains(out, "priority=5") {
		t.Fatalf("flows survived a vswitchd restart:\n%s", out)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the failure and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f with a recorder and returns its Fatalf message ("" if f
// passed).
func failure(t *testing.T, f func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.msg
}

// NoAnswer passes only when ping ran, sent every request and got no
// answer: an answer, a missing namespace or a ping that cannot run fail it.
func TestNoAnswerProvesItsProbe(t *testing.T) {
	n := NewNode(t, "na")
	n.AddBridge(t, "br-int")
	a := n.AddContainer(t, "a", ContainerOpts{Addr: netip.MustParsePrefix("10.251.0.1/24")})
	b := n.AddContainer(t, "b", ContainerOpts{Addr: netip.MustParsePrefix("10.251.0.2/24")})
	a.AttachTo(t, "br-int", 1, nil)
	b.AttachTo(t, "br-int", 2, nil)
	n.Ofctl(t, "add-flow", "br-int", "actions=NORMAL")
	if ok, out := a.Ping(b.Addr.Addr(), 1); !ok {
		t.Fatalf("positive control: %s", out)
	}
	if msg := failure(t, func(tb testing.TB) { a.NoAnswer(tb, b.Addr.Addr(), 1) }); !strings.Contains(msg, "was answered") {
		t.Errorf("an answered ping: %q", msg)
	}
	if msg := failure(t, func(tb testing.TB) { a.NoAnswer(tb, netip.MustParseAddr("10.251.0.9"), 2) }); msg != "" {
		t.Errorf("an unanswered ping failed the check: %s", msg)
	}

	fake := t.TempDir() // a ping that fails without sending anything
	if err := os.WriteFile(filepath.Join(fake, "ping"), []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("broken ping", func(t *testing.T) {
		t.Setenv("PATH", fake+":"+os.Getenv("PATH"))
		if msg := failure(t, func(tb testing.TB) { a.NoAnswer(tb, netip.MustParseAddr("10.251.0.9"), 1) }); !strings.Contains(msg, "did not run as a probe") {
			t.Errorf("a broken ping: %q", msg)
		}
	})
	gone := &Container{Name: "gone", NS: NetNS(uniqueName("gone"))}
	if msg := failure(t, func(tb testing.TB) { gone.NoAnswer(tb, b.Addr.Addr(), 1) }); !strings.Contains(msg, "no network namespace") {
		t.Errorf("a missing namespace: %q", msg)
	}
}
