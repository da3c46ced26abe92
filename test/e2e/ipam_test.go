package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// ipBed is one node "ha" (agCluster: blue 10.100.0.0/16, ha's range
// 10.100.1.0/24) with the real agent serving its local API.
type ipBed struct {
	node   *testbed.Node
	agent  *testbed.Agent
	cli    *atCLI
	client *agentapi.Client
}

func newIPBed(t *testing.T) *ipBed {
	t.Helper()
	testbed.Require(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	node := testbed.NewNode(t, "ha")
	p := agStart(t, node, "ha", "192.0.2.1", file)
	return &ipBed{node: node, agent: p, cli: &atCLI{bin: testbed.AgentBinary(t), node: node, clusterFile: file},
		client: agentapi.NewClient(testbed.AgentSocket(node))}
}

// restart kills the agent (its allocations die with it) and starts it again.
func (b *ipBed) restart(t *testing.T) {
	t.Helper()
	b.agent.Stop(syscall.SIGKILL)
	b.agent.Start(t)
	b.agent.WaitReady(t, 15*time.Second)
}

// TestIPAMParallelAllocations: 100 allocations at once through the real
// socket get 100 distinct addresses of the host's range, each counted; a
// released one is handed out again; the socket is root's alone.
func TestIPAMParallelAllocations(t *testing.T) {
	b := newIPBed(t)
	if fi, err := os.Stat(testbed.AgentSocket(b.node)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("api socket: %v, mode %v; want 0600", err, fi.Mode())
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]agentapi.Allocation, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Go(func() {
			got[i], errs[i] = b.client.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: fmt.Sprintf("test:%d", i)})
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, a := range got {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		ip := a.Address.Addr()
		if j, dup := seen[ip]; dup {
			t.Fatalf("allocations %d and %d both got %s", j, i, ip)
		}
		seen[ip] = i
		if a.Address.Bits() != 16 || !netip.MustParsePrefix("10.100.1.0/24").Contains(ip) || ip == netip.MustParseAddr("10.100.1.0") {
			t.Fatalf("allocation %d: %s, want an address of ha's range 10.100.1.0/24 (not its first) with /16", i, a.Address)
		}
	}
	if n := b.agent.Metric(t, `ofctl_agent_api_requests_total{call="allocate",result="ok"}`); n != 100 {
		t.Errorf("allocations counted: %v, want 100", n)
	}
	// The 100 lowest, .1 to .100: release .7 and it is the next one given.
	seven := netip.MustParseAddr("10.100.1.7")
	if err := b.client.Release(ctx, agentapi.ReleaseRequest{Network: "blue", IP: seven, Owner: fmt.Sprintf("test:%d", seen[seven])}); err != nil {
		t.Fatal(err)
	}
	if a, err := b.client.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: "after"}); err != nil || a.Address.Addr() != seven {
		t.Fatalf("after releasing %s: %v, %v", seven, a.Address, err)
	}
}

// TestIPAMAttach: attach without --ip takes the lowest free address of the
// host's share from the agent, with the agent's gateway and MTU; a
// detached container's address is the next one given (stop/start keeps
// it); an --ip of another host's range is refused by the agent; the
// ports keep their addresses across an agent restart.
func TestIPAMAttach(t *testing.T) {
	b := newIPBed(t)
	ctx := context.Background()
	n, err := b.client.Network(ctx, "blue")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2, c3 := atNewNS(t, "i1"), atNewNS(t, "i2"), atNewNS(t, "i3")
	r1 := b.cli.mustJSON(t, "attach", "--network", "blue", atNSPath(c1))
	r2 := b.cli.mustJSON(t, "attach", "--network", "blue", atNSPath(c2))
	// 10.100.1.1, the first address of ha's range, is its gateway's.
	if r1.IP != "10.100.1.2/16" || r2.IP != "10.100.1.3/16" || !r1.Installed || !r2.Installed {
		t.Fatalf("attached %+v and %+v; want 10.100.1.2/16 and 10.100.1.3/16, installed", r1, r2)
	}
	if r1.MTU != n.MTU || r1.Gateway != addrOrEmpty(n.Gateway) {
		t.Fatalf("attach took mtu %d gateway %q; the agent says %d %q", r1.MTU, r1.Gateway, n.MTU, addrOrEmpty(n.Gateway))
	}
	b.cli.checkAttached(t, c1, r1.Port, "eth1", "10.100.1.2/16", "0a:58:0a:64:01:02", n.MTU)
	_, errOut := b.cli.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.2.5", atNSPath(c3))
	if !strings.Contains(errOut, "agent: address not available: 10.100.2.5 in network blue is in host hb's range 10.100.2.0/24") {
		t.Fatalf("--ip of hb's range: %q", errOut)
	}
	b.cli.checkNoTrace(t, c3)

	b.cli.mustRun(t, "detach", atNSPath(c1))
	if r3 := b.cli.mustJSON(t, "attach", "--network", "blue", atNSPath(c3)); r3.IP != "10.100.1.2/16" {
		t.Fatalf("after detaching the first, attach got %s, want the freed 10.100.1.2/16", r3.IP)
	}

	// The agent's allocations die with it; the ports hold their addresses.
	b.restart(t)
	a, err := b.client.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: "after-restart"})
	if err != nil || a.Address.Addr() != netip.MustParseAddr("10.100.1.4") {
		t.Fatalf("after a restart: %v, %v; want 10.100.1.4 (.1 the gateway's, .2 and .3 held by ports)", a.Address, err)
	}
	if r := b.cli.mustJSON(t, "attach", "--network", "blue", atNSPath(c2)); r.Action != "already-attached" || r.IP != r2.IP {
		t.Fatalf("attaching again after the restart: %+v", r)
	}
}

// TestIPAMCollisionAfterRestart: a client given an address just before the
// agent restarted adds its port after another client was given the same
// address (the allocation died with the agent): the port rule keeps the
// address with the first port, the agent writes ofctl-agent.error on the
// second, and its client, waiting for the installed signal, is refused.
func TestIPAMCollisionAfterRestart(t *testing.T) {
	b := newIPBed(t)
	ctx := context.Background()
	late := &attach.AgentAllocator{Client: b.client, Kind: "test"}
	ns := atNewNS(t, "late")
	got, err := late.Allocate(ctx, attach.AllocRequest{Network: "blue", ContainerID: atNSPath(ns), IfName: "eth1"})
	if err != nil || got != netip.MustParsePrefix("10.100.1.2/16") { // .1: the gateway
		t.Fatalf("allocation before the restart: %v, %v", got, err)
	}
	b.restart(t)
	first := b.cli.mustJSON(t, "attach", "--network", "blue", atNSPath(atNewNS(t, "first")))
	if first.IP != got.String() || !first.Installed {
		t.Fatalf("attach after the restart: %+v, want %s installed (the allocation died with the agent)", first, got)
	}

	// The late client goes on with the address it was given: its port
	// (added here as a CNI plugin or a script adds one) claims it too.
	lateCtr := b.node.AddContainer(t, "late", testbed.ContainerOpts{Addr: got, MAC: arp.DerivedMAC(got.Addr())})
	lateCtr.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: got.Addr().String()})
	db, err := ovsdb.New(ovsdb.Config{Endpoint: b.node.DBAddr(), Bridge: ovsdb.BridgeConfig{Name: "br-int"}, ProbeInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	dbCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = db.Run(dbCtx) }()
	ports := attach.NewOVSPorts(db)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = ports.WaitInstalled(wctx, lateCtr.HostIf, got.Addr()) // what attach, the CNI and Docker plugins wait on
	var refused *ovsdb.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "already held by interface "+first.Port) {
		t.Fatalf("the second port with %s: %v, want the agent's refusal naming %s", got.Addr(), err, first.Port)
	}
	if v := atUnquote(b.node.Vsctl(t, "get", "interface", lateCtr.HostIf, "external_ids:ofctl-agent.error")); !strings.Contains(v, first.Port) {
		t.Fatalf("ofctl-agent.error of the second port: %q", v)
	}
	if v := atUnquote(b.node.Vsctl(t, "get", "interface", first.Port, "external_ids:ofctl-agent.installed")); v != got.Addr().String() {
		t.Fatalf("the first port lost its installed mark: %q", v)
	}
	agentFlowsOf := func(port string) int {
		return strings.Count(b.node.Ofctl(t, "dump-flows", "br-int", "cookie=0xfca0000000000000/0xffff000000000000,in_port="+port), "cookie=0xfca0")
	}
	if nFirst, nLate := agentFlowsOf(first.Port), agentFlowsOf(lateCtr.HostIf); nFirst == 0 || nLate != 0 {
		t.Fatalf("agent flows matching in_port: %d for the holder %s (want some), %d for the refused %s (want none)", nFirst, first.Port, nLate, lateCtr.HostIf)
	}
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
