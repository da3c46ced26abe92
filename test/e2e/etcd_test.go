package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
// one etcd embedded in the test process on 127.0.0.1. The network lives in
// etcd too: every agent has the same flags but its name and tunnel IP.

const (
	etPrefix = "/e2e"
	etTTL    = 2 * time.Second
)

var etNet = cluster.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}

type etBed struct {
	etcd   *etcdtest.Server
	client *clientv3.Client
	nodes  []*testbed.Node
	agents []*agProc
	cs     []*testbed.Container // one per node, in node order
}

func etSetup(t *testing.T) *etBed {
	t.Helper()
	testbed.Require(t)
	b := &etBed{etcd: etcdtest.Start(t)}
	b.client = b.etcd.Client(t)
	etPut(t, b.client, etcd.NetworkKey(etPrefix, etNet.Name), string(etcd.EncodeNetwork(etNet)))
	names := []string{"ea", "eb", "ec"}
	for _, n := range names {
		b.nodes = append(b.nodes, testbed.NewNode(t, n))
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

func etPut(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

// etStart starts an agent with the etcd backend and waits until it is ready.
func etStart(t *testing.T, node *testbed.Node, etcdURL, tunnelIP string) *agProc {
	t.Helper()
	p := &agProc{node: node, listen: freePort(t)}
	p.args = []string{"run", "--node-name", node.Name, "--ovsdb", node.DBAddr(), "--ovs-rundir", node.Dir,
		"--datapath-type", "netdev", "--tunnel-ip", tunnelIP, "--tunnel-port", "gre0", "--tunnel-ofport", "100",
		"--cluster-backend", "etcd", "--etcd-endpoints", etcdURL, "--etcd-prefix", etPrefix,
		"--etcd-lease-ttl", etTTL.String(), "--etcd-dial-timeout", "1s",
		"--cluster-file", filepath.Join(node.Dir, "no-cluster-file.yaml"),
		"--listen", p.listen, "--verify-interval", "300ms", "--log-level", "debug"}
	log, err := os.Create(filepath.Join(node.Dir, "agent-"+node.Name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = log
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("agent %s log:\n%s", node.Name, tail(b, 6000))
		}
	})
	p.start(t)
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

	t.Run("SIGKILLed agent's endpoints vanish after the lease TTL and come back", func(t *testing.T) {
		dead := b.agents[2]
		dead.kill(syscall.SIGKILL)
		killed := time.Now()
		for _, i := range []int{0, 1} {
			testbed.Eventually(t, etTTL+10*time.Second, func() bool { return !etPrograms(t, b.nodes[i], b.cs[2]) },
				"%s still programs %s of the dead host", b.nodes[i].Name, b.cs[2].Name)
		}
		if took := time.Since(killed); took < etTTL/2 {
			t.Errorf("endpoints removed %v after the kill, before the lease could expire", took)
		}
		if ok, _ := b.cs[0].Ping(b.cs[2].Addr.Addr(), 1); ok {
			t.Error("ping to the dead host's container still works: its flows were not removed")
		}
		dead.start(t)
		b.pingAll(t, 20*time.Second)
	})

	t.Run("etcd stopped: pings keep working, changes resume after it returns", func(t *testing.T) {
		b.etcd.Stop()
		sent, recv := pingDuring(t, b.cs[0], b.cs[1].Addr.Addr(), "0.1", func() {
			// Reported: the metric drops (probe every 5s), readiness stays.
			testbed.Eventually(t, 15*time.Second, func() bool { return etMetric(t, b.agents[0], "ofctl_agent_etcd_connected") == 0 },
				"etcd outage not reported in ofctl_agent_etcd_connected")
			if !b.agents[0].ready() {
				t.Error("readiness dropped while etcd was down")
			}
		})
		if sent < 10 || recv != sent {
			t.Errorf("while etcd was down: %d pings sent, %d answered", sent, recv)
		}
		// Made while etcd is down: published when it returns.
		late := etContainer(t, b.nodes[2], "x2", "10.100.3.30/16")
		time.Sleep(time.Second)
		if etPrograms(t, b.nodes[0], late) {
			t.Fatal("a change made while etcd was down reached another host")
		}
		b.etcd.Start()
		testbed.Eventually(t, 20*time.Second, func() bool { return etPrograms(t, b.nodes[0], late) },
			"change made while etcd was down never applied")
		testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := b.cs[0].Ping(late.Addr.Addr(), 1); return ok },
			"ping to the late container never worked")
		testbed.Eventually(t, 15*time.Second, func() bool { return etMetric(t, b.agents[0], "ofctl_agent_etcd_connected") == 1 },
			"etcd's return not reported")
		b.cs = append(b.cs, late)
		b.pingAll(t, 20*time.Second)
	})
}

// etMetric reads one unlabelled sample from an agent's /metrics; -1 if
// absent or unreadable.
func etMetric(t *testing.T, p *agProc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
