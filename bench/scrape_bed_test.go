package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// One network, this host alone: the bridge holds the fixed flows, the
// network's flow and five flows per endpoint.
const scCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: self
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.0.0/16 }
`

// scStartAgent builds and starts `ofctl-agent run` on node; it returns the
// pid and HTTP address once the agent is ready.
func scStartAgent(b *testing.B, node *testbed.Node) (int, string) {
	b.Helper()
	cluster := filepath.Join(b.TempDir(), "cluster.yaml")
	if err := os.WriteFile(cluster, []byte(scCluster), 0o644); err != nil {
		b.Fatal(err)
	}
	args := append(daemonArgs(node, "self"), "--cluster-file", cluster, "--verify-interval", "1h", "--log-level", "warn",
		// ovs-vswitchd stalls for seconds while it adds 1000 ports at once:
		// do not take it for dead (a reconnect resyncs every flow).
		"--echo-interval", "10s", "--dead-interval", "2m")
	d := startDaemon(b, filepath.Join(node.Dir, "agent-scrape.log"), args...)
	d.WaitReady(b, 30*time.Second)
	return d.Pid(), d.Listen
}

// scAddPorts adds dummy ports [from, to) as endpoints in one ovs-vsctl
// call. Generic database commands (create, add) keep ovs-vsctl from
// rebuilding its view of the bridge after every port, which add-port
// followed by set does (quadratic at thousands of ports).
func scAddPorts(b *testing.B, node *testbed.Node, from, to int) {
	b.Helper()
	start := time.Now()
	args := []string{"--timeout=900"}
	var ports []string
	for i := from; i < to; i++ {
		name := fmt.Sprintf("d%d", i)
		args = append(args, "--", fmt.Sprintf("--id=@i%d", i), "create", "interface", "name="+name, "type=dummy")
		args = append(args, scEndpointIDs(i)...)
		args = append(args, "--", fmt.Sprintf("--id=@p%d", i), "create", "port", "name="+name, fmt.Sprintf("interfaces=@i%d", i))
		ports = append(ports, fmt.Sprintf("@p%d", i))
	}
	args = append(args, "--", "add", "bridge", "br-int", "ports")
	node.Vsctl(b, append(args, ports...)...)
	b.Logf("ports %d..%d added in %v", from, to, time.Since(start).Round(time.Millisecond))
}

// scEndpointIDs are the external_ids making port i an endpoint.
func scEndpointIDs(i int) []string {
	return []string{fmt.Sprintf("external_ids:%s=blue", endpoint.KeyNetwork),
		fmt.Sprintf("external_ids:%s=%s", endpoint.KeyIP, scIP(i)),
		fmt.Sprintf("external_ids:%s=ctr-%d", endpoint.KeyContainerID, i)}
}

// scIP is the address of endpoint i, inside 10.100.0.0/16.
func scIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 100, byte(1 + i/250), byte(2 + i%250)})
}

// scWaitFlows waits, polling ovs-ofctl dump-aggregate every second, until
// br-int holds the flows of endpoints endpoints.
func scWaitFlows(b *testing.B, node *testbed.Node, ports, endpoints int) {
	b.Helper()
	net := pipeline.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}
	ep := pipeline.Endpoint{Network: "blue", Port: "d0", OFPort: 1, IP: scIP(0), MAC: arp.DerivedMAC(scIP(0))}
	want := len(pipeline.FixedFlows(100)) + len(pipeline.NetworkFlows(net)) + endpoints*len(pipeline.EndpointFlows(net, ep))
	start := time.Now()
	got := -1
	for time.Since(start) < 20*time.Minute {
		if n, err := node.FlowCount("br-int"); err == nil {
			if got = n; got == want {
				b.Logf("%d ports, %d endpoints programmed after %v more", ports, endpoints, time.Since(start).Round(time.Millisecond))
				return
			}
		}
		time.Sleep(time.Second)
	}
	b.Fatalf("br-int holds %d flows, want %d for %d endpoints", got, want, endpoints)
}

func scGet(b *testing.B, listen, path string) string {
	b.Helper()
	resp, err := http.Get("http://" + listen + path)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %d %v", path, resp.StatusCode, err)
	}
	return string(body)
}
