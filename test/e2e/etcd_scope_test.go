package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

var etGreen = cluster.Network{Name: "green", VNI: 300, Subnet: netip.MustParsePrefix("10.30.0.0/16")}

// etAttachIn attaches a container to network's port with its kernel MAC.
func etAttachIn(t *testing.T, n *testbed.Node, name, ip, network string) *testbed.Container {
	t.Helper()
	addr := netip.MustParsePrefix(ip)
	c := n.AddContainer(t, name, testbed.ContainerOpts{Addr: addr})
	c.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: network,
		endpoint.KeyIP: addr.Addr().String(), endpoint.KeyMAC: c.MAC.String()})
	return c
}

// TestEtcdScopedFlows: a host programs a network's remote endpoints only
// while it has a local endpoint there (docs/etcd.md "Flows only where
// needed"). Host ea has containers in blue only: eb's container in green is
// not in ea's flows (eb's blue one is, and so is eb's tunnel); a container
// added to green on ea brings green's remote endpoints in with its own
// flows (its installed mark is written after both) and reaches eb's; the
// time from the attach to the first answered ping is logged; once it
// leaves, ea drops green's remote endpoints (and claims) again; a restart
// of ea's agent changes none of its flows.
func TestEtcdScopedFlows(t *testing.T) {
	b := etSetup(t)
	b.pingAll(t, 20*time.Second)
	ea, eb := b.nodes[0], b.nodes[1]
	etPut(t, b.client, etcd.NetworkKey(etPrefix, etGreen.Name), string(etcd.EncodeNetwork(etGreen)))
	g1 := etAttachIn(t, eb, "g1", "10.30.2.10/16", etGreen.Name)
	testbed.Eventually(t, 15*time.Second, func() bool {
		return strings.Contains(eb.Ofctl(t, "dump-flows", "br-int"), "arp_tpa=10.30.2.10")
	}, "eb never programmed its own green container")
	testbed.Eventually(t, 10*time.Second, func() bool {
		return etGet(t, b.client, etcd.EndpointKey(etPrefix, etGreen.Name, g1.Addr.Addr(), eb.Name)) != ""
	}, "eb never published g1")
	time.Sleep(time.Second) // let the agents take the view (a negative check follows)
	if !etPrograms(t, ea, b.cs[1]) {
		t.Fatal("ea lost eb's blue container")
	}
	if etPrograms(t, ea, g1) {
		t.Fatal("ea programs eb's green container without a green endpoint of its own")
	}
	// ea loads and watches blue's claims alone (its three containers):
	// green's are not in its index.
	claims := func() string {
		return fmt.Sprintf("networks loaded %v, endpoint records %v", etMetric(b.agents[0], "ofctl_agent_etcd_networks_loaded"),
			etMetric(b.agents[0], `ofctl_agent_etcd_records{kind="endpoint"}`))
	}
	if got := claims(); got != "networks loaded 1, endpoint records 3" {
		t.Fatalf("ea's etcd index without a green endpoint: %s", got)
	}

	start := time.Now()
	g2 := etAttachIn(t, ea, "g2", "10.30.1.10/16", etGreen.Name)
	var marked time.Duration
	testbed.Eventually(t, 15*time.Second, func() bool {
		ok := atUnquote(ea.Vsctl(t, "--if-exists", "get", "interface", g2.HostIf, "external_ids:"+endpoint.KeyInstalled)) != ""
		if ok {
			marked = time.Since(start)
			// the mark waits for the network's remote endpoints
			if !etPrograms(t, ea, g1) {
				t.Errorf("g2's installed mark was written before g1's flows were in ea's OVS")
			}
		}
		return ok
	}, "g2 never got its installed mark")
	var first time.Duration
	testbed.Eventually(t, 15*time.Second, func() bool {
		ok, _ := g2.Ping(g1.Addr.Addr(), 1)
		first = time.Since(start)
		return ok
	}, "g2 never reached g1")
	t.Logf("attach (ovs-vsctl add-port) to installed mark %v, to first answered ping %v", marked, first)
	if got := claims(); got != "networks loaded 2, endpoint records 5" {
		t.Errorf("ea's etcd index with a green endpoint: %s", got)
	}

	ea.Vsctl(t, "del-port", "br-int", g2.HostIf)
	testbed.Eventually(t, 10*time.Second, func() bool { return !etPrograms(t, ea, g1) },
		"ea still programs green's remote endpoints after its last green endpoint left")
	testbed.Eventually(t, 10*time.Second, func() bool { return claims() == "networks loaded 1, endpoint records 3" },
		"ea still holds green's claims after its last green endpoint left: %s", claims())
	if !etPrograms(t, ea, b.cs[1]) {
		t.Error("ea dropped blue's remote endpoints with green's")
	}

	// A restart keeps every flow: the start loads the claims of the
	// networks of the endpoints it finds before its first Sync, which
	// then removes nothing (without that wait blue's remote endpoints
	// would go, and come back once loaded).
	restarted := time.Now()
	b.agents[0].Restart(t)
	synced := b.agents[0].Logged(t, `msg="pipeline synchronised"`, restarted)
	if synced.Attr("deleted") != "0" || synced.Attr("added") != "0" {
		t.Errorf("ea's restart changed its flows: %s", synced.Line)
	}
	loaded := b.agents[0].Logged(t, `msg="remote endpoints of the networks in use loaded"`, restarted)
	t.Logf("restart: the networks in use loaded in %s", loaded.Attr("took"))
	b.pingAll(t, 20*time.Second)
}
