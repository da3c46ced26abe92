package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestAttachKilled: `ofctl-agent attach` SIGKILLed once the agent has
// allocated its address (by a proxy of the agent's socket, before the
// answer reaches it) leaves an allocation and no port; `detach` gives the
// address back at once (not after the agent's 2-minute TTL): the agent's
// list no longer has it and the next attach gets it. A second detach has
// nothing to undo.
func TestAttachKilled(t *testing.T) {
	testbed.Require(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testbed.NewNode(t, "ha")
	agStart(t, a, "ha", "192.0.2.1", file)
	c := &atCLI{bin: atBuild(t), node: a, clusterFile: file}
	api := agentapi.NewClient(testbed.AgentSocket(a))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held := func(owner string) (agentapi.Allocated, bool) {
		l, err := api.Allocations(ctx, "blue", "attach:")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, x := range l {
			if x.Owner == owner {
				return x, true
			}
		}
		return agentapi.Allocated{}, false
	}

	ns := atNewNS(t, "atk")
	var victim atomic.Int64
	proxy := killingProxy(t, testbed.AgentSocket(a), func() int { return int(victim.Load()) })
	cmd := exec.Command(c.bin, "attach", "--ovsdb", a.DBAddr(), "--netns-host", a.NS.Path(), "--agent-socket", proxy,
		"--network", "blue", atNSPath(ns))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim.Store(int64(cmd.Process.Pid))
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("attach was not killed: %v", cmd.ProcessState)
	}
	owner := "attach:" + atNSPath(ns) + "/eth1"
	x, ok := held(owner)
	if !ok || x.Port != "" {
		t.Fatalf("the killed attach's allocation: %+v (%v), want one without a port", x, ok)
	}
	if p := cniPort(t, a, atNSPath(ns)); p != "" {
		t.Fatalf("the killed attach made port %s", p)
	}
	r := c.mustJSON(t, "detach", atNSPath(ns))
	if r.Action != "released" || len(r.Released) != 1 || r.Released[0] != "blue/"+x.IP.String() || len(r.Ports) != 0 {
		t.Fatalf("detach: %+v, want the allocation of %s released", r, x.IP)
	}
	if y, ok := held(owner); ok {
		t.Fatalf("detach left the allocation %+v", y)
	}
	if _, errOut := c.run(t, 1, "detach", atNSPath(ns)); !strings.Contains(errOut, "not attached") {
		t.Errorf("second detach: %q", errOut)
	}
	next := atNewNS(t, "atn")
	if got := c.mustJSON(t, "attach", "--network", "blue", atNSPath(next)); netip.MustParsePrefix(got.IP).Addr() != x.IP {
		t.Fatalf("the next attach got %s, want the killed attach's %s back", got.IP, x.IP)
	}
}
