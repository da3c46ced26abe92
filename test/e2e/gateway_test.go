package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// gwLink is what `ip -o addr` and `ip -o link` say about a gateway port in
// the node's namespace: "" when it is missing.
func gwLink(n *testbed.Node, port string) (link, addrs string) {
	l, err := exec.Command("ip", "-n", string(n.NS), "-o", "link", "show", port).CombinedOutput()
	if err != nil {
		return "", ""
	}
	a, _ := exec.Command("ip", "-n", string(n.NS), "-o", "-4", "addr", "show", "dev", port).CombinedOutput()
	return string(l), string(a)
}

// gwReady reports whether node's gateway port is up with its address,
// MAC and MTU.
func gwReady(n *testbed.Node, port, addr, mac string, mtu int) bool {
	l, a := gwLink(n, port)
	return strings.Contains(l, ",UP") && strings.Contains(l, fmt.Sprintf("mtu %d ", mtu)) &&
		strings.Contains(l, "link/ether "+mac) && strings.Contains(a, "inet "+addr+" ")
}

// TestGateway: each host gets a gateway port in blue (ha 10.100.1.1/16, hb
// 10.100.2.1/16, the first address of its range) with the derived MAC and
// the automatic MTU (br-phy's 1500 - 42 = 1458, also what the local API
// gives attach); the host pings a local and a remote container, a
// container pings its gateway and the other host's; containers across
// hosts travel in GRE with their own addresses (tcpdump on the underlay);
// the MTU is exact on the wire (a 1458-byte packet crosses as 1500 bytes,
// a 1459-byte one does not cross); a gateway port deleted by hand and an
// address removed are put back (time measured); an agent SIGKILL and
// restart keeps the gateway working.
func TestGateway(t *testing.T) {
	tp := agSetup(t)
	port := gateway.PortName("blue")
	testbed.Eventually(t, 10*time.Second, func() bool { return gwReady(tp.a, port, "10.100.1.1/16", "0a:58:0a:64:01:01", 1458) },
		"ha's gateway never came up with 10.100.1.1/16, its derived MAC and MTU 1458")
	testbed.Eventually(t, 10*time.Second, func() bool { return gwReady(tp.b, port, "10.100.2.1/16", "0a:58:0a:64:02:01", 1458) },
		"hb's gateway never came up")
	if got := tp.a.Vsctl(t, "get", "interface", port, "type"); strings.TrimSpace(got) != "internal" {
		t.Fatalf("gateway port type %q, want internal", got)
	}
	// The route to the network is in the agent's table, looked up by a rule,
	// not in main (where Docker's pool check would trip on it).
	routed := func() bool {
		return strings.Contains(tp.a.Exec(t, "ip", "route", "show", "table", "28519"), "10.100.0.0/16 dev "+port) &&
			strings.Contains(tp.a.Exec(t, "ip", "rule"), "28519:\tfrom all to 10.100.0.0/16 lookup 28519")
	}
	testbed.Eventually(t, 5*time.Second, routed, "no route to 10.100.0.0/16 in table 28519 with its rule")
	if main := tp.a.Exec(t, "ip", "route", "show", "table", "main"); strings.Contains(main, "10.100.") {
		t.Errorf("a route to the network in the main table:\n%s", main)
	}

	// The local API gives attach and the plugins the gateway and the MTU.
	n, err := agentapi.NewClient(testbed.AgentSocket(tp.a)).Network(context.Background(), "blue")
	if err != nil || n.Gateway != netip.MustParseAddr("10.100.1.1") || n.MTU != 1458 {
		t.Fatalf("agent API network blue: %+v, %v; want gateway 10.100.1.1, MTU 1458", n, err)
	}

	hostPing := func(node *testbed.Node, dst string) error {
		_, err := exec.Command("ip", "netns", "exec", string(node.NS), "ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1", dst).CombinedOutput()
		return err
	}
	for _, dst := range []string{"10.100.1.10", "10.100.2.10"} { // local, then across GRE
		testbed.Eventually(t, 10*time.Second, func() bool { return hostPing(tp.a, dst) == nil }, "host ha never reached "+dst)
	}
	for _, gw := range []string{"10.100.1.1", "10.100.2.1"} { // its own gateway, the other host's
		testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(netip.MustParseAddr(gw), 3); return ok },
			"container ca never reached gateway "+gw)
	}

	t.Run("underlay shows the containers' addresses", func(t *testing.T) {
		out := gwCapture(t, tp.a, "ul-hb", "ip proto 47", func() { tp.ca.Ping(tp.cb.Addr.Addr(), 3) })
		if !regexp.MustCompile(`192\.0\.2\.1 > 192\.0\.2\.2: GREv0, Flags \[key present\], key=0x64, length \d+\n\s+IP \(.*proto ICMP.*\n\s+10\.100\.1\.10 > 10\.100\.2\.10: ICMP echo request`).MatchString(out) {
			t.Fatalf("no GRE packet carrying 10.100.1.10 > 10.100.2.10 on the underlay:\n%s", out)
		}
	})

	t.Run("MTU on the wire", func(t *testing.T) {
		setMTU := func(mtu string, cs ...*testbed.Container) {
			for _, c := range cs { // both ends of the veth: a veth drops what exceeds its peer's MTU
				c.Exec(t, "ip", "link", "set", c.IfName, "mtu", mtu)
				c.Node.Exec(t, "ip", "link", "set", c.HostIf, "mtu", mtu)
			}
		}
		setMTU("1458", tp.ca, tp.cb)
		big := func(size int) func() {
			return func() {
				_, _ = tp.ca.NS.Exec("ping", "-n", "-q", "-c", "2", "-i", "0.1", "-W", "1", "-M", "do", "-s", fmt.Sprint(size-28), "10.100.2.10")
			}
		}
		out := gwCapture(t, tp.a, "ul-hb", "ip proto 47", big(1458))
		if !strings.Contains(out, "proto GRE (47), length 1500)") || !strings.Contains(out, "10.100.2.10 > 10.100.1.10: ICMP echo reply") {
			t.Fatalf("a 1458-byte packet did not cross as a 1500-byte GRE packet and get its reply:\n%s", out)
		}
		// One byte more does not fit the underlay: the container MTU is exact.
		setMTU("1459", tp.ca)
		out = gwCapture(t, tp.a, "ul-hb", "ip proto 47", big(1459))
		if strings.Contains(out, "ICMP echo") {
			t.Fatalf("a 1459-byte packet crossed a 1500-byte underlay:\n%s", out)
		}
		setMTU("1400", tp.ca, tp.cb)
	})

	t.Run("oversized packets get a router's answer", func(t *testing.T) {
		out := testbed.AddOutside(t, tp.a)
		out.NS.MustExec(t, "ip", "route", "add", "10.100.0.0/16", "via", out.HostAddr.String())
		for _, c := range []*testbed.Container{tp.ca} { // the automatic MTU in the container, both veth ends
			c.Exec(t, "ip", "link", "set", c.IfName, "mtu", "1458")
			c.Node.Exec(t, "ip", "link", "set", c.HostIf, "mtu", "1458")
			c.Exec(t, "ip", "route", "replace", "default", "via", "10.100.1.1")
		}
		// A full-size packet from the container reaches the outside (masqueraded) and its reply comes back.
		testbed.Eventually(t, 15*time.Second, func() bool {
			_, err := tp.ca.NS.Exec("ping", "-n", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", "1430", out.Addr.String())
			return err == nil
		}, "a 1458-byte packet from the container to the outside never got its reply")
		// A packet the gateway's MTU cannot carry: the host answers "fragmentation needed, mtu 1458", as a router.
		var got string
		testbed.Eventually(t, 15*time.Second, func() bool {
			got, _ = out.NS.Exec("ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", "10.100.1.10")
			return strings.Contains(got, "mtu = 1458")
		}, "the host never answered a 1500-byte DF packet towards the container with fragmentation-needed (mtu 1458)")
		for _, c := range []*testbed.Container{tp.ca} {
			c.Exec(t, "ip", "link", "set", c.IfName, "mtu", "1400")
			c.Node.Exec(t, "ip", "link", "set", c.HostIf, "mtu", "1400")
		}
	})

	t.Run("trace and dump-flows show the gateway", func(t *testing.T) {
		tp.pa.Stop(syscall.SIGTERM) // again with ovs-vswitchd's control socket, for trace's comparison
		tp.pa.Args = append(tp.pa.Args, "--vswitchd-ctl", tp.a.VswitchdCtl())
		tp.pa.Start(t)
		tp.pa.WaitReady(t, 15*time.Second)
		ofport := strings.TrimSpace(tp.a.Vsctl(t, "get", "interface", port, "ofport"))
		// To an outside address: the container's default route, its gateway.
		code, out := dbgCLI(t, "trace", "--listen", tp.pa.Listen, "icmp,in_port=vca", "nw_dst=198.51.100.7")
		if code != 0 || !strings.Contains(out, "AGREE") || !strings.Contains(out, "dl_dst=0a:58:0a:64:01:01") ||
			!strings.Contains(out, "model: output:"+ofport) || !strings.Contains(out, "[gateway "+port+" (blue 10.100.1.1)]") {
			t.Errorf("trace to an outside address (want AGREE, output:%s, the gateway's MAC and flow): exit %d\n%s", ofport, code, out)
		}
		code, out = dbgCLI(t, "dump-flows", "--listen", tp.pa.Listen, "--endpoint", "10.100.1.1")
		if code != 0 || strings.Count(out, "gateway "+port+" (blue 10.100.1.1)") < 5 {
			t.Errorf("dump-flows --endpoint 10.100.1.1: want the gateway's 5 flows annotated: exit %d\n%s", code, out)
		}
	})

	t.Run("repaired", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			break_ func()
		}{
			{"port deleted", func() { tp.a.Vsctl(t, "del-port", "br-int", port) }},
			{"address removed", func() { tp.a.Exec(t, "ip", "addr", "del", "10.100.1.1/16", "dev", port) }},
			{"set down", func() { tp.a.Exec(t, "ip", "link", "set", port, "down") }},
			{"rule deleted", func() { tp.a.Exec(t, "ip", "rule", "del", "to", "10.100.0.0/16", "lookup", "28519") }},
		} {
			tc.break_()
			start := time.Now()
			testbed.Eventually(t, 10*time.Second, func() bool {
				return gwReady(tp.a, port, "10.100.1.1/16", "0a:58:0a:64:01:01", 1458) && routed()
			}, tc.name+": never repaired")
			took := time.Since(start)
			testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(netip.MustParseAddr("10.100.1.1"), 1); return ok },
				tc.name+": gateway unreachable after the repair")
			answered := time.Since(start)
			t.Logf("%s: gateway back in %v, answering pings after %v", tc.name, took.Round(time.Millisecond), answered.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("%s: repaired after %v, want within 2 s", tc.name, took)
			}
		}
		if r := tp.pa.Metric(t, "ofctl_agent_gateway_repairs_total"); r < 4 {
			t.Errorf("ofctl_agent_gateway_repairs_total = %v, want >= 4", r)
		}
	})

	t.Run("agent SIGKILL and restart", func(t *testing.T) {
		tp.pa.Stop(syscall.SIGKILL)
		if ok, out := tp.ca.Ping(netip.MustParseAddr("10.100.1.1"), 3); !ok {
			t.Fatalf("gateway unreachable while the agent is down:\n%s", out)
		}
		tp.pa.Start(t)
		tp.pa.WaitReady(t, 15*time.Second)
		if ok, out := tp.ca.Ping(netip.MustParseAddr("10.100.1.1"), 3); !ok {
			t.Fatalf("gateway unreachable after the restart:\n%s", out)
		}
		if err := hostPing(tp.a, "10.100.2.10"); err != nil {
			t.Fatalf("host ha cannot reach the remote container after the restart: %v", err)
		}
	})
}

// gwCapture runs tcpdump -v on ifname in node's namespace while do runs,
// and returns what it printed.
func gwCapture(t *testing.T, node *testbed.Node, ifname, filter string, do func()) string {
	t.Helper()
	var buf strings.Builder
	cmd := exec.Command("ip", "netns", "exec", string(node.NS), "tcpdump", "-l", "-n", "-v", "-i", ifname, filter)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	time.Sleep(500 * time.Millisecond) // tcpdump listening
	do()
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return buf.String()
}

// TestGatewayBadInput: a gateway address an endpoint already holds (the
// cluster view's gateways: entry, 10.100.1.50) stays the endpoint's: the
// gateway port gets ofctl-agent.error, the conflict is logged and counted,
// the container keeps working; an agent-configured address outside the
// host's range (gateways key, red) is refused, logged and counted as
// kind="gateway", and that network has no gateway while blue's is made
// once the container goes.
func TestGatewayBadInput(t *testing.T) {
	testbed.Require(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	const view = `networks:
  - { name: blue, vni: 100, subnet: 10.100.0.0/16 }
  - { name: red, vni: 200, subnet: 10.200.0.0/16 }
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, red: 10.200.1.0/24 }
    gateways: { blue: 10.100.1.50 }
`
	if err := os.WriteFile(file, []byte(view), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testbed.NewNode(t, "ha")
	testbed.Underlay(t, a, testbed.NewNode(t, "hb"), netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	a.AddBridge(t, "br-int")
	c := agContainer(t, a, "cx", "10.100.1.50/16") // on the bridge before the agent: it holds the address
	args := append(testbed.AgentArgs(a, "ha", "192.0.2.1"), "--cluster-file", file, "--gateways", "red=10.200.9.1")
	p := testbed.StartAgent(t, filepath.Join(a.Dir, "agent-ha.log"), args...)
	p.WaitReady(t, 15*time.Second)

	port := gateway.PortName("blue")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ext := a.Vsctl(t, "--if-exists", "get", "interface", port, "external_ids")
		if strings.Contains(ext, "already held by interface vcx") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway port holding an endpoint's address has no ofctl-agent.error naming the holder: %s", ext)
		}
	}
	if v := p.Metric(t, `ofctl_agent_invalid_inputs_total{kind="conflict"}`); v < 1 {
		t.Errorf(`invalid_inputs_total{kind="conflict"} = %v, want >= 1`, v)
	}
	if v := p.Metric(t, `ofctl_agent_invalid_inputs_total{kind="gateway"}`); v != 1 {
		t.Errorf(`invalid_inputs_total{kind="gateway"} = %v, want 1 (red's 10.200.9.1 is outside ha's range)`, v)
	}
	p.Logged(t, "10.200.9.1 is outside the host's range 10.200.1.0/24", time.Time{})
	if l, _ := gwLink(a, gateway.PortName("red")); l != "" {
		t.Errorf("red has a gateway port with a refused address: %s", l)
	}
	if ok, out := c.Ping(netip.MustParseAddr("10.100.1.50"), 1); !ok { // its own address: the stack is fine
		t.Fatalf("container: %s", out)
	}
	// The container leaves: the gateway gets the address.
	a.Vsctl(t, "del-port", "br-int", c.HostIf)
	testbed.Eventually(t, 10*time.Second, func() bool { return gwReady(a, port, "10.100.1.50/16", "0a:58:0a:64:01:32", 1458) },
		"the gateway never took its address after the endpoint left")
	testbed.Eventually(t, 10*time.Second, func() bool {
		ext := a.Vsctl(t, "get", "interface", port, "external_ids")
		return strings.Contains(ext, `ofctl-agent.installed="10.100.1.50"`) && !strings.Contains(ext, "ofctl-agent.error")
	}, "the gateway port never installed once the address was free")
}

// TestGatewayEtcd: in etcd mode (no ranges) a host's gateway is the
// address its agent is configured with (--gateways blue=10.100.7.1), and is
// published in etcd like an endpoint (so the claim rule covers it): the
// other host learns it, its container reaches the gateway through the
// tunnel and the gateway's host reaches that container; a host configured
// with no address has no gateway.
func TestGatewayEtcd(t *testing.T) {
	testbed.Require(t)
	srv := etcdtest.Start(t)
	root := srv.EnableAuth(t, srv.Client(t), "root-e2e-secret")
	etPut(t, root, etcd.NetworkKey(etPrefix, etNet.Name), string(etcd.EncodeNetwork(etNet)))
	ea, eb := testbed.NewNode(t, "ea"), testbed.NewNode(t, "eb")
	for _, n := range []*testbed.Node{ea, eb} {
		etcdtest.AddHost(t, root, etPrefix, n.Name, etPassword(n.Name), etNet.Name)
	}
	testbed.Underlay(t, ea, eb, etTunnel(0), etTunnel(1))
	pa := etStart(t, ea, srv.Endpoint(), etTunnel(0).Addr().String())
	pa.Stop(syscall.SIGTERM)
	pa.Args = append(pa.Args, "--gateways", "blue=10.100.7.1")
	pa.Start(t)
	pa.WaitReady(t, 15*time.Second)
	etStart(t, eb, srv.Endpoint(), etTunnel(1).Addr().String())
	cb := etContainer(t, eb, "cb", "10.100.2.10/16")
	// A gateway alone does not make ea program blue's remote endpoints (a
	// NAT network's gateway serves this host's containers; docs/etcd.md,
	// "Flows only where needed"): a container of ea's in blue does.
	etContainer(t, ea, "ca", "10.100.1.10/16")

	port := gateway.PortName("blue")
	testbed.Eventually(t, 10*time.Second, func() bool { return gwReady(ea, port, "10.100.7.1/16", "0a:58:0a:64:07:01", 1458) },
		"ea's configured gateway never came up")
	if l, _ := gwLink(eb, port); l != "" {
		t.Errorf("eb, configured with no gateway address, has a gateway port: %s", l)
	}
	key := etcd.EndpointKey(etPrefix, "blue", netip.MustParseAddr("10.100.7.1"), "ea")
	testbed.Eventually(t, 10*time.Second, func() bool { return etGet(t, root, key) != "" }, "the gateway is not published at %s", key)
	testbed.Eventually(t, 15*time.Second, func() bool { ok, _ := cb.Ping(netip.MustParseAddr("10.100.7.1"), 1); return ok },
		"eb's container never reached ea's gateway")
	out, err := exec.Command("ip", "netns", "exec", string(ea.NS), "ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1", "10.100.2.10").CombinedOutput()
	if err != nil {
		t.Fatalf("host ea cannot reach eb's container: %v\n%s", err, out)
	}
}
