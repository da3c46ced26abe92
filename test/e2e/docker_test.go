package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/dockerplugin"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The Docker plugin served by the agent (--docker-plugin), with a real
// dockerd per host (test/testbed's Docker bed) and real OVS; ip, ovs-vsctl,
// ovs-ofctl and ping are the observers.

// dkHost is a test host: a node, its dockerd, its agent serving the plugin.
type dkHost struct {
	name   string
	node   *testbed.Node
	docker *testbed.Docker
	agent  *testbed.Agent
	img    string
}

// dkCreate is the README's network create command (the IPAM option names
// the cluster network).
var dkCreate = []string{"network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=blue", "blue"}

// dkSetup starts the hosts of agCluster (ha, hb) with an underlay between
// them, a dockerd on each, and an agent serving the plugin in that
// dockerd's plugin directory; blue is created on each.
func dkSetup(t *testing.T, names ...string) []*dkHost {
	t.Helper()
	testbed.RequireDocker(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	tunnel := map[string]string{"ha": "192.0.2.1", "hb": "192.0.2.2"}
	var hosts []*dkHost
	for _, name := range names {
		n := testbed.NewNode(t, name)
		hosts = append(hosts, &dkHost{name: name, node: n})
	}
	if len(hosts) == 2 {
		testbed.Underlay(t, hosts[0].node, hosts[1].node, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	}
	for _, h := range hosts {
		h.docker = testbed.StartDocker(t, h.node)
		args := append(testbed.AgentArgs(h.node, h.name, tunnel[h.name]), "--cluster-file", file, "--verify-interval", "300ms",
			"--docker-plugin", filepath.Join(h.docker.PluginDir(), "ofctl-agent.sock"),
			"--docker-state", filepath.Join(h.node.Dir, "docker-networks.json"),
			"--docker-netns", filepath.Join("/run/netns", string(h.node.NS)))
		h.agent = testbed.StartAgent(t, filepath.Join(h.node.Dir, "agent-"+h.name+".log"), args...)
		h.agent.WaitReady(t, 20*time.Second)
		h.img = h.docker.Image(t)
		h.docker.Run(t, dkCreate...)
	}
	return hosts
}

// run starts a container on blue and returns its address.
func (h *dkHost) run(t *testing.T, name string, extra ...string) netip.Addr {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", "blue"}, extra...)
	h.docker.Run(t, append(args, h.img, "sleep", "3600")...)
	return h.addr(t, name)
}

// addr is a container's address on blue as docker inspect reports it.
func (h *dkHost) addr(t *testing.T, name string) netip.Addr {
	t.Helper()
	out := strings.TrimSpace(h.docker.Run(t, "inspect", "--format", "{{.NetworkSettings.Networks.blue.IPAddress}}", name))
	a, err := netip.ParseAddr(out)
	if err != nil {
		t.Fatalf("%s on %s: address %q", name, h.name, out)
	}
	return a
}

// endpointID is a container's Docker endpoint id on blue.
func (h *dkHost) endpointID(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(h.docker.Run(t, "inspect", "--format", "{{.NetworkSettings.Networks.blue.EndpointID}}", name))
}

// ping pings dst from container name, count packets, and says whether all
// were answered.
func (h *dkHost) ping(name string, dst netip.Addr, count int) (bool, string) {
	out, err := h.docker.RunErr("exec", name, "ping", "-c", fmt.Sprint(count), "-W", "1", dst.String())
	return err == nil && strings.Contains(out, fmt.Sprintf("%d packets received", count)), out
}

// links lists the plugin's veths in the host's namespace (ip link).
func (h *dkHost) links(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(h.node.NS.MustExec(t, "ip", "-o", "link", "show"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "dk") {
			out = append(out, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	return out
}

// TestDockerPlugin: two hosts, each its own dockerd and agent serving the
// plugin: an unknown network is refused by docker network create with the
// plugin's message; docker run on each host gets an address of the host's
// range, an OVS port with the endpoint's external_ids and the installed
// mark, flows, and the containers ping each other across hosts by IP;
// docker network inspect shows the addresses; stop/start keeps the
// address and the connectivity; rm -f leaves no veth, port or flow.
func TestDockerPlugin(t *testing.T) {
	hosts := dkSetup(t, "ha", "hb")
	ha, hb := hosts[0], hosts[1]

	out, err := ha.docker.RunErr("network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=purple", "purple")
	if err == nil || !strings.Contains(out, `network "purple" is not in the cluster view`) {
		t.Errorf("network create purple: err %v, output %s", err, out)
	}

	a := ha.run(t, "ca")
	b := hb.run(t, "cb")
	if !netip.MustParsePrefix("10.100.1.0/24").Contains(a) || !netip.MustParsePrefix("10.100.2.0/24").Contains(b) {
		t.Fatalf("addresses %s, %s: not of the hosts' ranges", a, b)
	}
	// The first packets may go while the other side's ARP resolves.
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := ha.ping("ca", b, 1); return ok }, "ca never reached cb")
	if ok, out := ha.ping("ca", b, 3); !ok {
		t.Fatalf("ca -> cb (%s): %s", b, out)
	}
	if ok, out := hb.ping("cb", a, 3); !ok {
		t.Fatalf("cb -> ca (%s): %s", a, out)
	}

	// The port, as ovs-vsctl sees it.
	epA := ha.endpointID(t, "ca")
	port, peer := dockerplugin.VethNames(epA)
	for key, want := range map[string]string{
		endpoint.KeyNetwork: "blue", endpoint.KeyIP: a.String(), endpoint.KeyInstalled: a.String(),
		endpoint.KeyMAC: "0a:58:" + macTail(a), endpoint.KeyOwner: dockerplugin.OwnerDocker, dockerplugin.KeyDockerEndpoint: epA,
	} {
		got := strings.Trim(strings.TrimSpace(ha.node.Vsctl(t, "get", "Interface", port, "external_ids:"+key)), `"`)
		if got != want {
			t.Errorf("port %s external_ids:%s=%q, want %q", port, key, got, want)
		}
	}
	if n := dkFlowsWith(t, ha.node, a); n == 0 {
		t.Errorf("no flow of %s in ovs-ofctl dump-flows", a)
	}
	// The container end moved into the container and became eth0 with the
	// derived MAC and the agent's MTU; the host end stayed.
	ctr := ha.docker.Run(t, "exec", "ca", "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(ctr, "mtu 1450") || !strings.Contains(ctr, "0a:58:"+macTail(a)) {
		t.Errorf("eth0 in ca: %s", ctr)
	}
	if got := ha.links(t); len(got) != 1 || got[0] != port {
		t.Errorf("veths on ha: %v, want [%s] (%s moved into the container)", got, port, peer)
	}

	insp := ha.docker.Run(t, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{.IPv4Address}};{{end}}", "blue")
	if !strings.Contains(insp, "ca "+a.String()+"/16;") {
		t.Errorf("docker network inspect blue: %s", insp)
	}

	// stop/start: the same address back, and connectivity.
	ha.docker.Run(t, "stop", "-t", "1", "ca")
	if got := ha.links(t); len(got) != 0 {
		t.Errorf("veths after docker stop: %v", got)
	}
	ha.docker.Run(t, "start", "ca")
	if again := ha.addr(t, "ca"); again != a {
		t.Errorf("after stop/start ca has %s, had %s", again, a)
	}
	if ok, out := ha.ping("ca", b, 3); !ok {
		t.Fatalf("after stop/start ca -> cb: %s", out)
	}

	// rm -f: nothing left (ip link, ovs-vsctl, ovs-ofctl).
	port, _ = dockerplugin.VethNames(ha.endpointID(t, "ca"))
	ha.docker.Run(t, "rm", "-f", "ca")
	if got := ha.links(t); len(got) != 0 {
		t.Errorf("veths after docker rm -f: %v", got)
	}
	if ports := ha.node.Vsctl(t, "list-ports", "br-int"); strings.Contains(ports, "dk") {
		t.Errorf("ports after docker rm -f: %s (had %s)", ports, port)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return dkFlowsWith(t, ha.node, a) == 0 },
		"flows of "+a.String()+" left after docker rm -f")
}

// dkFlowsWith counts the flows of br-int naming address a (ovs-ofctl
// dump-flows).
func dkFlowsWith(t *testing.T, n *testbed.Node, a netip.Addr) int {
	t.Helper()
	re := regexp.MustCompile(`[=>]` + regexp.QuoteMeta(a.String()) + `([^0-9./]|$)`)
	c := 0
	for _, line := range strings.Split(n.Ofctl(t, "dump-flows", "br-int"), "\n") {
		if re.MatchString(line) {
			c++
		}
	}
	return c
}

// macTail is the derived MAC's last four bytes, as ip link prints them.
func macTail(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}
