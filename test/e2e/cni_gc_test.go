package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/cniplugin"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestCNIKilledAdd: an ADD killed between the agent's allocation and its
// OVS port (simulated: the allocation asked for through the agent's API
// with the owner the plugin uses, and nothing after) holds its address, is
// listed with its owner and counted as an allocation waiting for its port;
// GC with a valid list that omits it, or DEL of its container, frees the
// address at once (not after the 2-minute TTL): the list no longer has it
// and the next ADD gets that address. The live containers' ports stay
// (ovs-vsctl) and their addresses are on their interfaces (ip). The
// plugin's logFile has what GC released and why an ADD failed.
func TestCNIKilledAdd(t *testing.T) {
	testbed.Require(t)
	bin := cniBin(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testbed.NewNode(t, "ha")
	pa := agStart(t, a, "ha", "192.0.2.1", file)
	h := newCNIHost(t, a, bin)
	api := agentapi.NewClient(testbed.AgentSocket(a))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// add runs the plugin's ADD for container id in a new namespace and
	// returns the address the container's eth0 has (ip as the observer).
	add := func(t *testing.T, id string) netip.Addr {
		t.Helper()
		ns := atNewNS(t, "cnik")
		out, err := h.plugin("ADD", id, atNSPath(ns), "eth0", h.pluginConf(""))
		if err != nil {
			t.Fatalf("ADD %s: %v %s", id, err, out)
		}
		r := parseCNI(t, out)
		p := netip.MustParsePrefix(r.IPs[0].Address)
		if got := atMustCmd(t, "ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, p.String()) {
			t.Fatalf("eth0 of %s: %s, want %s", id, got, p)
		}
		return p.Addr()
	}
	// killed is what a killed ADD leaves: the agent's allocation for the
	// plugin's owner of (id, eth0), and no port.
	killed := func(t *testing.T, id string) netip.Addr {
		t.Helper()
		got, err := api.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: attach.Owner(cniplugin.Owner, id, "eth0")})
		if err != nil {
			t.Fatalf("allocate for %s: %v", id, err)
		}
		return got.Address.Addr()
	}
	// listed is the allocation of (id, eth0) in the agent's list.
	listed := func(t *testing.T, id string) (agentapi.Allocated, bool) {
		t.Helper()
		l, err := api.Allocations(ctx, "blue", cniplugin.Owner+":")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, x := range l {
			if x.Owner == attach.Owner(cniplugin.Owner, id, "eth0") {
				return x, true
			}
		}
		return agentapi.Allocated{}, false
	}
	waiting := func() float64 {
		return pa.Metric(t, `ofctl_agent_addresses_held{holder="allocation",network="blue"}`)
	}

	logFile := filepath.Join(t.TempDir(), "log", "ofctl-cni.log")
	logAt := `,"logFile":"` + logFile + `"`
	readLog := func(t *testing.T) string {
		t.Helper()
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatalf("the plugin's log file: %v", err)
		}
		return string(data)
	}

	live := add(t, "live")
	if x, ok := listed(t, "live"); !ok || x.IP != live || x.Port == "" || x.Port != cniPort(t, a, "live") {
		t.Fatalf("live container's allocation %+v (%v): want %s held by its port %s", x, ok, live, cniPort(t, a, "live"))
	}

	t.Run("GC without the killed ADD's container", func(t *testing.T) {
		k := killed(t, "killed-gc")
		x, ok := listed(t, "killed-gc")
		if !ok || x.IP != k || x.Port != "" || x.Expires.IsZero() {
			t.Fatalf("killed ADD's allocation %+v (%v): want %s without a port, with its expiry", x, ok, k)
		}
		// An independent observer of the list: curl on the agent's socket,
		// as README's troubleshooting table says.
		if out := atMustCmd(t, "curl", "-sf", "--unix-socket", testbed.AgentSocket(a), "http://agent/v1/addresses?network=blue"); !strings.Contains(out, `"ip":"`+k.String()+`","owner":"cni:killed-gc/eth0","expires":`) {
			t.Fatalf("curl's list lacks the killed ADD's allocation of %s: %s", k, out)
		}
		if n := waiting(); n != 1 {
			t.Fatalf("addresses held by allocations waiting for a port: %v, want 1", n)
		}
		bystander := add(t, "bystander")
		if bystander == k {
			t.Fatalf("the killed ADD's %s was handed out again while held", k)
		}
		valid := `,"cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"},{"containerID":"bystander","ifname":"eth0"}]`
		if out, err := h.plugin("GC", "", "", "", h.pluginConf(valid+logAt)); err != nil {
			t.Fatalf("GC: %v %s", err, out)
		}
		if got := readLog(t); !strings.Contains(got, `msg="gc: released address" cmd=GC`) || !strings.Contains(got, "ip="+k.String()+" container=killed-gc ifname=eth0") {
			t.Errorf("the plugin's log file has no line for the released %s:\n%s", k, got)
		}
		if x, ok := listed(t, "killed-gc"); ok {
			t.Fatalf("GC left the allocation %+v", x)
		}
		if n := waiting(); n != 0 {
			t.Fatalf("addresses held by allocations waiting for a port after GC: %v, want 0", n)
		}
		for _, id := range []string{"live", "bystander"} {
			if cniPort(t, a, id) == "" {
				t.Fatalf("GC removed the port of valid container %s", id)
			}
		}
		if got := add(t, "after-gc"); got != k {
			t.Fatalf("the next ADD got %s, want the killed ADD's %s back", got, k)
		}
	})
	t.Run("DEL of the killed ADD's container", func(t *testing.T) {
		k := killed(t, "killed-del")
		if _, ok := listed(t, "killed-del"); !ok {
			t.Fatal("no allocation listed for killed-del")
		}
		for range 2 { // DEL is idempotent
			if out, err := h.plugin("DEL", "killed-del", "", "eth0", h.pluginConf("")); err != nil {
				t.Fatalf("DEL: %v %s", err, out)
			}
		}
		if x, ok := listed(t, "killed-del"); ok {
			t.Fatalf("DEL left the allocation %+v", x)
		}
		if got := add(t, "after-del"); got != k {
			t.Fatalf("the next ADD got %s, want the killed ADD's %s back", got, k)
		}
		if x, ok := listed(t, "live"); !ok || x.IP != live {
			t.Fatalf("the live container's allocation changed: %+v (%v)", x, ok)
		}
	})
	t.Run("a failed ADD in the log file", func(t *testing.T) {
		// The runtime gets the error on stdout; the operator finds it in
		// the log file, with the container.
		conf := strings.Replace(h.pluginConf(logAt), `"name":"blue"`, `"name":"green"`, 1)
		out, err := h.plugin("ADD", "failed-add", atNSPath(atNewNS(t, "cnif")), "eth0", conf)
		if r := parseCNI(t, out); err == nil || r.Code != 7 {
			t.Fatalf("ADD in an unknown network: %v %s", err, out)
		}
		if got := readLog(t); !strings.Contains(got, `msg="ofctl-cni ADD failed" cmd=ADD`) || !strings.Contains(got, "container=failed-add") ||
			!strings.Contains(got, "network green is not in the agent's cluster view") {
			t.Errorf("the plugin's log file has no line for the failed ADD:\n%s", got)
		}
	})
	// The agent counts the plugin's calls (the plugin exports nothing).
	for call, least := range map[string]float64{"list": 1, "release": 2, "allocate": 6} {
		if n := pa.Metric(t, `ofctl_agent_api_requests_total{call="`+call+`",result="ok"}`); n < least {
			t.Errorf("api_requests_total{call=%q,result=\"ok\"} = %v, want at least %v", call, n, least)
		}
	}
	if expired := pa.Metric(t, `ofctl_agent_address_allocations_expired_total{network="blue"}`); expired != 0 {
		t.Errorf("%v allocations expired: the cleanup should have been GC's and DEL's, not the TTL's", expired)
	}
}
