package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The etcd backend end to end: three hosts in namespaces, each with its own
// OVS and a real `ofctl-agent run --cluster-backend etcd` (root namespace),
// one etcd embedded in the test process on 127.0.0.1, with auth on: each
// agent logs in as its own etcd user, whose role confines it to its prefix
// (docs/etcd.md, "Trust and roles"); the test is root. The network lives
// in etcd too: every agent has the same flags but its name, tunnel IP and
// credentials.

const (
	etPrefix = "/e2e"
	etTTL    = 2 * time.Second
)

var etNet = cluster.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}

type etBed struct {
	etcd   *etcdtest.Server
	client *clientv3.Client // etcd's root
	nodes  []*testbed.Node
	agents []*testbed.Agent
	cs     []*testbed.Container // one per node, in node order
}

func etSetup(t *testing.T) *etBed {
	t.Helper()
	testbed.Require(t)
	b := &etBed{etcd: etcdtest.Start(t)}
	b.client = b.etcd.EnableAuth(t, b.etcd.Client(t), "root-e2e-secret")
	etPut(t, b.client, etcd.NetworkKey(etPrefix, etNet.Name), string(etcd.EncodeNetwork(etNet)))
	names := []string{"ea", "eb", "ec"}
	for _, n := range names {
		b.nodes = append(b.nodes, testbed.NewNode(t, n))
		etcdtest.AddHost(t, b.client, etPrefix, n, etPassword(n), etNet.Name, etGreen.Name)
	}
	// A star underlay: ea's br-phy switches between eb and ec.
	testbed.Underlay(t, b.nodes[0], b.nodes[1], etTunnel(0), etTunnel(1))
	testbed.Underlay(t, b.nodes[0], b.nodes[2], etTunnel(0), etTunnel(2))
	for i, n := range b.nodes {
		b.agents = append(b.agents, etStart(t, n, b.etcd.Endpoint(), etTunnel(i).Addr().String()))
	}
	for i, n := range b.nodes {
		b.cs = append(b.cs, etContainer(t, n, fmt.Sprintf("c%d", i), fmt.Sprintf("10.100.%d.10/16", i+1)))
	}
	return b
}

func etTunnel(i int) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i+1)) }

// etPassword is node's etcd password: the agent reads it from a file, and
// its log must never show it.
func etPassword(node string) string { return "pw-" + node + "-e2e-secret" }

func etPut(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

// etStart starts an agent with the etcd backend and waits until it is ready.
func etStart(t *testing.T, node *testbed.Node, etcdURL, tunnelIP string) *testbed.Agent {
	t.Helper()
	pwFile := filepath.Join(node.Dir, "etcd-password")
	if err := os.WriteFile(pwFile, []byte(etPassword(node.Name)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(testbed.AgentArgs(node, node.Name, tunnelIP),
		"--cluster-backend", "etcd", "--etcd-endpoints", etcdURL, "--etcd-prefix", etPrefix,
		"--etcd-username", "ofctl-"+node.Name, "--etcd-password-file", pwFile,
		"--etcd-lease-ttl", etTTL.String(), "--etcd-dial-timeout", "1s",
		"--cluster-file", filepath.Join(node.Dir, "no-cluster-file.yaml"), "--verify-interval", "300ms")
	p := testbed.StartAgent(t, filepath.Join(node.Dir, "agent-"+node.Name+".log"), args...)
	p.WaitReady(t, 15*time.Second)
	return p
}

// etContainer attaches a container with the kernel's random MAC (not
// derived from its IP): remote hosts learn it from etcd.
func etContainer(t *testing.T, n *testbed.Node, name, ip string) *testbed.Container {
	t.Helper()
	addr := netip.MustParsePrefix(ip)
	c := n.AddContainer(t, name, testbed.ContainerOpts{Addr: addr})
	if arp.DerivedMAC(addr.Addr()).String() == c.MAC.String() {
		t.Fatalf("container %s got the derived MAC", name)
	}
	c.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: etNet.Name,
		endpoint.KeyIP: addr.Addr().String(), endpoint.KeyMAC: c.MAC.String()})
	return c
}

// programs reports whether node n's flows answer ARP for c and forward to
// its MAC (a remote endpoint's two flows).
func etPrograms(t *testing.T, n *testbed.Node, c *testbed.Container) bool {
	flows := n.Ofctl(t, "dump-flows", "br-int")
	return strings.Contains(flows, "arp_tpa="+c.Addr.Addr().String()) && strings.Contains(flows, "dl_dst="+c.MAC.String())
}

func (b *etBed) pingAll(t *testing.T, timeout time.Duration) {
	t.Helper()
	for i, src := range b.cs {
		for j, dst := range b.cs {
			if i == j {
				continue
			}
			testbed.Eventually(t, timeout, func() bool { ok, _ := src.Ping(dst.Addr.Addr(), 1); return ok },
				"ping %s -> %s never worked", src.Name, dst.Name)
		}
	}
}

func TestEtcdThreeHosts(t *testing.T) {
	b := etSetup(t)
	b.pingAll(t, 20*time.Second)

	t.Run("endpoint removed on one host leaves the others' flows", func(t *testing.T) {
		extra := etContainer(t, b.nodes[1], "x1", "10.100.2.20/16")
		for _, i := range []int{0, 2} {
			testbed.Eventually(t, 10*time.Second, func() bool { return etPrograms(t, b.nodes[i], extra) },
				"%s never programmed %s", b.nodes[i].Name, extra.Name)
		}
		b.nodes[1].Vsctl(t, "del-port", "br-int", extra.HostIf)
		for _, i := range []int{0, 2} {
			testbed.Eventually(t, 10*time.Second, func() bool { return !etPrograms(t, b.nodes[i], extra) },
				"%s still programs removed endpoint %s", b.nodes[i].Name, extra.Name)
		}
	})

	t.Run("a foreign write to a host's record is reported and undone", func(t *testing.T) {
		key := etcd.HostKey(etPrefix, b.nodes[0].Name)
		want := string(etcd.EncodeHost(etTunnel(0).Addr()))
		if got := etGet(t, b.client, key); got != want {
			t.Fatalf("%s holds %q before the test, want %q", key, got, want)
		}
		before := etMetric(b.agents[0], "ofctl_agent_etcd_foreign_writes_total")
		if before < 0 {
			t.Fatal("ofctl_agent_etcd_foreign_writes_total missing")
		}
		// Root may write anything: it redirects ea to an address no host has.
		etPut(t, b.client, key, string(etcd.EncodeHost(netip.MustParseAddr("192.0.2.99"))))
		testbed.Eventually(t, 10*time.Second, func() bool {
			return etMetric(b.agents[0], "ofctl_agent_etcd_foreign_writes_total") > before
		}, "the foreign write was not counted")
		testbed.Eventually(t, 10*time.Second, func() bool { return etGet(t, b.client, key) == want },
			"the foreign write was not undone")
		b.pingAll(t, 20*time.Second)
		// Host eb's credentials cannot do the same.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eb := b.etcd.ClientAs(t, "ofctl-eb", etPassword("eb"))
		if _, err := eb.Put(ctx, key, string(etcd.EncodeHost(netip.MustParseAddr("192.0.2.99")))); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("eb writes ea's record: err %v, want permission denied", err)
		}
	})

	t.Run("SIGKILLed agent's endpoints vanish after the lease TTL and come back", func(t *testing.T) {
		dead := b.agents[2]
		dead.Stop(syscall.SIGKILL)
		killed := time.Now()
		for _, i := range []int{0, 1} {
			testbed.Eventually(t, etTTL+10*time.Second, func() bool { return !etPrograms(t, b.nodes[i], b.cs[2]) },
				"%s still programs %s of the dead host", b.nodes[i].Name, b.cs[2].Name)
		}
		if took := time.Since(killed); took < etTTL/2 {
			t.Errorf("endpoints removed %v after the kill, before the lease could expire", took)
		}
		if ok, out := b.cs[0].Ping(b.cs[1].Addr.Addr(), 1); !ok { // positive control: the same source, bridge and tunnel
			t.Fatalf("ping %s -> %s (alive host) failed: %s", b.cs[0].Name, b.cs[1].Name, out)
		}
		b.cs[0].NoAnswer(t, b.cs[2].Addr.Addr(), 1) // the dead host's container: its flows were removed
		dead.Start(t)
		dead.WaitReady(t, 15*time.Second)
		b.pingAll(t, 20*time.Second)
	})

	t.Run("etcd stopped: pings keep working, changes resume after it returns", func(t *testing.T) {
		b.etcd.Stop()
		sent, recv := pingDuring(t, b.cs[0], b.cs[1].Addr.Addr(), "0.1", func() {
			// Reported: the metric drops (probe every 5s), readiness stays.
			testbed.Eventually(t, 15*time.Second, func() bool { return etMetric(b.agents[0], "ofctl_agent_etcd_connected") == 0 },
				"etcd outage not reported in ofctl_agent_etcd_connected")
			if !b.agents[0].Ready() {
				t.Error("readiness dropped while etcd was down")
			}
			// Pings go on for 2 s of a reported outage (it can be
			// reported within a second: too few pings to judge).
			time.Sleep(2 * time.Second)
			if !b.agents[0].Ready() {
				t.Error("readiness dropped while etcd was down")
			}
		})
		if sent < 20 || recv != sent {
			t.Errorf("while etcd was down: %d pings sent, %d answered", sent, recv)
		}
		// Made while etcd is down: published when it returns. Once its
		// host has programmed it and failed to publish it, the others must
		// not have it.
		failures := etMetric(b.agents[2], "ofctl_agent_etcd_publish_failures_total")
		late := etContainer(t, b.nodes[2], "x2", "10.100.3.30/16")
		testbed.Eventually(t, 10*time.Second, func() bool {
			return etPrograms(t, b.nodes[2], late) && etMetric(b.agents[2], "ofctl_agent_etcd_publish_failures_total") > failures
		}, "%s never programmed %s nor failed to publish it", b.nodes[2].Name, late.Name)
		if etPrograms(t, b.nodes[0], late) {
			t.Fatal("a change made while etcd was down reached another host")
		}
		b.etcd.Start()
		testbed.Eventually(t, 20*time.Second, func() bool { return etPrograms(t, b.nodes[0], late) },
			"change made while etcd was down never applied")
		testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := b.cs[0].Ping(late.Addr.Addr(), 1); return ok },
			"ping to the late container never worked")
		testbed.Eventually(t, 15*time.Second, func() bool { return etMetric(b.agents[0], "ofctl_agent_etcd_connected") == 1 },
			"etcd's return not reported")
		b.cs = append(b.cs, late)
		b.pingAll(t, 20*time.Second)
	})

	t.Run("etcd passwords are never logged", func(t *testing.T) {
		for i, a := range b.agents {
			name := b.nodes[i].Name
			log, err := os.ReadFile(a.LogPath)
			if err != nil || len(log) == 0 {
				t.Fatalf("agent log %s: %v (%d bytes)", a.LogPath, err, len(log))
			}
			if pw := etPassword(name); strings.Contains(string(log), pw) {
				t.Errorf("agent %s logs its etcd password", name)
			}
			if !strings.Contains(string(log), `user=ofctl-`+name) {
				t.Errorf("agent %s does not log its etcd user", name)
			}
		}
	})
}

// etGet returns a key's value ("" if absent).
func etGet(t *testing.T, c *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// etMetric reads one unlabelled sample from an agent's /metrics; -1 if
// absent or unreadable.
func etMetric(p *testbed.Agent, name string) float64 {
	v, err := p.MetricErr(name)
	if err != nil {
		return -1
	}
	return v
}
