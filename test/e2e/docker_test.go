package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/dockerplugin"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
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

// dkCluster is agCluster with a second network, red.
const dkCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
  - name: red
    vni: 200
    subnet: 10.200.0.0/16
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, red: 10.200.1.0/24 }
  - name: hb
    tunnel_ip: 192.0.2.2
    ranges: { blue: 10.100.2.0/24, red: 10.200.2.0/24 }
`

// dkCreate is the README's network create command (the IPAM option names
// the cluster network).
var dkCreate = []string{"network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=blue", "blue"}

// dkSetup starts the hosts of agCluster (ha, hb) with an underlay between
// them, a dockerd on each, and an agent serving the plugin in that
// dockerd's plugin directory; blue is created on each.
func dkSetup(t *testing.T, names ...string) []*dkHost {
	t.Helper()
	return dkSetupWith(t, testbed.DockerOpts{}, names...)
}

// dkSetupWith is dkSetup with engine options.
func dkSetupWith(t *testing.T, o testbed.DockerOpts, names ...string) []*dkHost {
	t.Helper()
	hosts, _ := dkSetupAll(t, o, false, names...)
	return hosts
}

// dkSetupAll is dkSetupWith with an outside namespace behind the first
// host (testbed.AddOutside) when outside.
func dkSetupAll(t *testing.T, o testbed.DockerOpts, outside bool, names ...string) ([]*dkHost, *testbed.Outside) {
	t.Helper()
	testbed.RequireDocker(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(dkCluster), 0o644); err != nil {
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
	var out *testbed.Outside
	if outside {
		out = testbed.AddOutside(t, hosts[0].node)
	}
	for _, h := range hosts {
		h.docker = testbed.StartDockerWith(t, h.node, o)
		args := append(testbed.AgentArgs(h.node, h.name, tunnel[h.name]), "--cluster-file", file, "--verify-interval", "300ms",
			"--docker-plugin", filepath.Join(h.docker.PluginDir(), "ofctl-agent.sock"),
			"--docker-state", filepath.Join(h.node.Dir, "docker-networks.json"), "--docker-host", h.docker.Host())
		h.agent = testbed.StartAgent(t, filepath.Join(h.node.Dir, "agent-"+h.name+".log"), args...)
		h.agent.WaitReady(t, 20*time.Second)
		h.img = h.docker.Image(t)
		h.docker.Run(t, dkCreate...)
	}
	return hosts, out
}

// run starts a container on blue and returns its address.
func (h *dkHost) run(t *testing.T, name string, extra ...string) netip.Addr {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", "blue"}, extra...)
	h.docker.Run(t, append(args, h.img, "sleep", "3600")...)
	return h.addr(t, name)
}

// addr is a container's address on blue as docker inspect reports it.
func (h *dkHost) addr(t *testing.T, name string) netip.Addr { return h.addrOn(t, name, "blue") }

// addrOn is a container's address on network as docker inspect reports it.
func (h *dkHost) addrOn(t *testing.T, name, network string) netip.Addr {
	t.Helper()
	out := strings.TrimSpace(h.docker.Run(t, "inspect", "--format", "{{.NetworkSettings.Networks."+network+".IPAddress}}", name))
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
	_, metrics, err := ha.agent.Get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if n := dkSampleWith(metrics, "ofctl_agent_invalid_inputs_total", "docker-plugin"); n < 1 {
		t.Errorf("ofctl_agent_invalid_inputs_total{kind=docker-plugin} = %v after the refusal", n)
	}
	if !regexp.MustCompile(`(?m)^ofctl_agent_docker_plugin_requests_total\{call="IpamDriver.RequestPool",result="invalid"\} [1-9]`).Match(metrics) {
		t.Errorf("no invalid IpamDriver.RequestPool in ofctl_agent_docker_plugin_requests_total:\n%s", metrics)
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
	// The agent's list names the endpoint as the address's owner, held by its port.
	if l, err := agentapi.NewClient(testbed.AgentSocket(ha.node)).Allocations(context.Background(), "blue", "docker:"); err != nil ||
		len(l) != 1 || l[0].IP != a || l[0].Owner != "docker:"+epA || l[0].Port != port {
		t.Errorf("the agent's docker allocations: %+v (%v), want %s owned by docker:%s, held by port %s", l, err, a, epA, port)
	}
	// The container end moved into the container and became eth0 with the
	// derived MAC and the MTU the agent's local API gives; the default
	// route is this host's gateway when the API names one, else none (and
	// never a docker_gwbridge); the host end stayed.
	net, err := agentapi.NewClient(testbed.AgentSocket(ha.node)).Network(context.Background(), "blue")
	if err != nil {
		t.Fatal(err)
	}
	ctr := ha.docker.Run(t, "exec", "ca", "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(ctr, fmt.Sprintf("mtu %d ", net.MTU)) || !strings.Contains(ctr, "0a:58:"+macTail(a)) {
		t.Errorf("eth0 in ca: %s, want mtu %d and the derived MAC", ctr, net.MTU)
	}
	routes := ha.docker.Run(t, "exec", "ca", "ip", "route")
	switch {
	case net.Gateway.IsValid() && !strings.Contains(routes, "default via "+net.Gateway.String()+" dev eth0"):
		t.Errorf("ca's routes: %s, want the default via ha's gateway %s", routes, net.Gateway)
	case !net.Gateway.IsValid() && strings.Contains(routes, "default"):
		t.Errorf("ca's routes: %s: a default route while ha has no gateway", routes)
	}
	if links := ha.docker.Run(t, "exec", "ca", "ip", "-o", "link"); strings.Contains(links, "eth1") {
		t.Errorf("ca has a second interface (docker_gwbridge?): %s", links)
	}
	if got := ha.links(t); len(got) != 1 || got[0] != port {
		t.Errorf("veths on ha: %v, want [%s] (%s moved into the container)", got, port, peer)
	}

	insp := ha.docker.Run(t, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{.IPv4Address}};{{end}}", "blue")
	if !strings.Contains(insp, "ca "+a.String()+"/16;") {
		t.Errorf("docker network inspect blue: %s", insp)
	}

	// --mac-address (Engine API: the 28.x client wants API 1.44 for it):
	// the container's MAC, the port's ofctl-agent.mac, and the spoof guard
	// lets it through.
	st, body, err := ha.docker.API("POST", "/containers/create?name=cm", map[string]any{
		"Image": ha.img, "Cmd": []string{"sleep", "3600"}, "MacAddress": "02:00:00:00:00:42",
		"HostConfig": map[string]any{"NetworkMode": "blue"},
	})
	if err != nil || st != http.StatusCreated {
		t.Fatalf("create with MacAddress: %d %s %v", st, body, err)
	}
	ha.docker.Run(t, "start", "cm")
	if got := strings.TrimSpace(ha.docker.Run(t, "exec", "cm", "cat", "/sys/class/net/eth0/address")); got != "02:00:00:00:00:42" {
		t.Errorf("--mac-address: eth0 of cm has %s", got)
	}
	cmPort, _ := dockerplugin.VethNames(ha.endpointID(t, "cm"))
	if got := strings.Trim(strings.TrimSpace(ha.node.Vsctl(t, "get", "Interface", cmPort, "external_ids:"+endpoint.KeyMAC)), `"`); got != "02:00:00:00:00:42" {
		t.Errorf("port %s external_ids:%s=%s", cmPort, endpoint.KeyMAC, got)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := ha.ping("cm", b, 1); return ok }, "cm (--mac-address) never reached cb")
	ha.docker.Run(t, "rm", "-f", "cm")

	// -p: the port map reaches the port as ofctl-agent.ports (the agent
	// publishes from there, as for attach --publish).
	ha.run(t, "cp", "-p", "8080:80", "-p", "5353:53/udp")
	cpPort, _ := dockerplugin.VethNames(ha.endpointID(t, "cp"))
	if got := strings.Trim(strings.TrimSpace(ha.node.Vsctl(t, "get", "Interface", cpPort, "external_ids:"+endpoint.KeyPorts)), `"`); got != "tcp:8080:80,udp:5353:53" {
		t.Errorf("port %s external_ids:%s=%q, want tcp:8080:80,udp:5353:53", cpPort, endpoint.KeyPorts, got)
	}
	out, err = ha.docker.RunErr("run", "--rm", "--network", "blue", "-p", "127.0.0.1:8081:80", ha.img, "true")
	if err == nil || !strings.Contains(out, "a host address cannot be given") {
		t.Errorf("-p with a host address: err %v, %s", err, out)
	}
	ha.docker.Run(t, "rm", "-f", "cp")
	if got := ha.links(t); len(got) != 1 {
		t.Errorf("veths on ha after the -p containers: %v", got)
	}

	// A second network: docker network connect and disconnect, containers
	// on two of ours.
	for _, h := range hosts {
		h.docker.Run(t, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=red", "red")
	}
	ha.docker.Run(t, "network", "connect", "red", "ca")
	hb.docker.Run(t, "network", "connect", "red", "cb")
	ra, rb := ha.addrOn(t, "ca", "red"), hb.addrOn(t, "cb", "red")
	if !netip.MustParsePrefix("10.200.1.0/24").Contains(ra) || !netip.MustParsePrefix("10.200.2.0/24").Contains(rb) {
		t.Errorf("red addresses %s, %s: not of the hosts' ranges", ra, rb)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := ha.ping("ca", rb, 1); return ok }, "ca never reached cb on red")
	if ok, out := ha.ping("ca", b, 2); !ok {
		t.Errorf("ca -> cb on blue while on red too: %s", out)
	}
	if got := ha.links(t); len(got) != 2 {
		t.Errorf("veths on ha with ca on two networks: %v", got)
	}
	ha.docker.Run(t, "network", "disconnect", "red", "ca")
	if got := ha.links(t); len(got) != 1 || got[0] != port {
		t.Errorf("veths on ha after network disconnect: %v, want [%s]", got, port)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return dkFlowsWith(t, ha.node, ra) == 0 }, "flows of %s left after network disconnect", ra)

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

// ofport is the OpenFlow port number of a container's OVS port.
func (h *dkHost) ofport(t *testing.T, name string) (port string, ofport int) {
	t.Helper()
	port, _ = dockerplugin.VethNames(h.endpointID(t, name))
	n, err := strconv.Atoi(strings.TrimSpace(h.node.Vsctl(t, "get", "Interface", port, "ofport")))
	if err != nil {
		t.Fatalf("ofport of %s: %v", port, err)
	}
	return port, n
}

// TestDockerPluginGuards: ARP from a Docker container is answered on its
// host (the underlay carries its ICMP in GRE, never an ARP); a container
// with NET_ADMIN that forges its source address reaches nobody (the
// victim's port sees none of it) and its port's spoof-drop flow and the
// agent's ofctl_agent_spoof_drops_packets_total count the packets.
func TestDockerPluginGuards(t *testing.T) {
	hosts := dkSetup(t, "ha", "hb")
	ha, hb := hosts[0], hosts[1]
	b := hb.run(t, "cb")
	portB, _ := hb.ofport(t, "cb")
	a := ha.run(t, "ca", "--cap-add", "NET_ADMIN")

	wire := plStartCapture(t, ha.node.NS, "ul-hb", "proto gre")
	victim := plStartCapture(t, hb.node.NS, portB)
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := ha.ping("ca", b, 1); return ok }, "ca never reached cb")
	neigh := ha.docker.Run(t, "exec", "ca", "ip", "neigh", "show", b.String())
	if !strings.Contains(neigh, "0a:58:"+macTail(b)) {
		t.Errorf("ca's neighbour entry for %s: %q, want the derived MAC (answered by ha's agent)", b, neigh)
	}

	// Forged source address: a second address on eth0, used as source.
	forged := netip.MustParseAddr("10.100.1.200")
	ha.docker.Run(t, "exec", "ca", "ip", "addr", "add", forged.String()+"/16", "dev", "eth0")
	port, ofport := ha.ofport(t, "ca")
	filter, match := ofTable(pipeline.SpoofGuard)+fmt.Sprintf(",in_port=%d", ofport), fmt.Sprintf("in_port=%d", ofport)
	before := plFlowPackets(t, ha.node, filter, 100, match)
	_, _ = ha.docker.RunErr("exec", "ca", "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", forged.String(), b.String())
	dropped := plWaitPackets(t, ha.node, filter, 100, match, before+5) - before
	if dropped < 5 {
		t.Errorf("spoof-drop flow of %s counted %d packets, want >= 5", port, dropped)
	}
	testbed.Eventually(t, 10*time.Second, func() bool {
		_, body, err := ha.agent.Get("/metrics")
		return err == nil && dkSampleWith(body, "ofctl_agent_spoof_drops_packets_total", port) >= float64(before+5)
	}, "ofctl_agent_spoof_drops_packets_total of %s never counted the forged packets", port)
	if ok, out := ha.ping("ca", b, 2); !ok { // control: the captures see legitimate traffic
		t.Fatalf("legitimate ping after the spoofing: %s", out)
	}
	plStopAll(wire, victim)

	if arp := wire.read(t, "proto gre", "-v"); len(arp) == 0 {
		t.Error("no GRE on the underlay: the capture proves nothing")
	} else {
		for _, l := range arp {
			if strings.Contains(l, "ARP") {
				t.Errorf("ARP inside GRE on the underlay: %s", l)
			}
		}
	}
	if got := victim.read(t, "src host "+forged.String()); len(got) != 0 {
		t.Errorf("cb's port saw %d packets from the forged %s:\n%s", len(got), forged, strings.Join(got, "\n"))
	}
	if got := victim.read(t, "icmp and src host "+a.String()); len(got) == 0 {
		t.Error("cb's port capture missed the legitimate ping: it proves nothing")
	}
}

// dkSampleWith is the value of the first sample of family name whose
// labels contain label (in quotes), -1 if none.
func dkSampleWith(metrics []byte, name, label string) float64 {
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, name+"{") && strings.Contains(l, `"`+label+`"`) {
			if v, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// dkPing pings dst from container name of h for secs seconds (-i 0.2)
// while during runs, and returns what ping's summary says.
func dkPing(t *testing.T, h *dkHost, name string, dst netip.Addr, secs int, during func()) (sent, recv int) {
	t.Helper()
	cmd := exec.Command("docker", "exec", name, "ping", "-i", "0.2", "-W", "1", "-w", strconv.Itoa(secs), dst.String())
	cmd.Env = append(os.Environ(), h.docker.Env()...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	during()
	_ = cmd.Wait()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("ping %s from %s: no summary in %q", dst, name, out.String())
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv
}

// TestDockerPluginRestarts: with containers running, an agent SIGKILL and
// restart and a dockerd restart (--restart=always containers) keep them
// talking across hosts (ping loss reported); after the agent's restart a
// container made before it is removed cleanly and a new one runs (the
// network binding survived); while the agent is stopped docker run fails
// with a clear message and leaves nothing behind (how long it waits is
// logged).
func TestDockerPluginRestarts(t *testing.T) {
	hosts := dkSetup(t, "ha", "hb")
	ha, hb := hosts[0], hosts[1]
	a := ha.run(t, "ca", "--restart=always", "--stop-timeout", "1")
	old := ha.run(t, "old", "--stop-timeout", "1")
	hb.run(t, "cb", "--stop-timeout", "1")
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := hb.ping("cb", a, 1); return ok }, "cb never reached ca")

	// A port of a dead endpoint (its veth gone: a reboot whose dockerd lost
	// its state) is removed by the agent at its start.
	ha.node.Vsctl(t, "add-port", "br-int", "dkhdeadbeef0000", "--", "set", "interface", "dkhdeadbeef0000",
		"external_ids:ofctl-agent.owner=docker", "external_ids:ofctl-agent.network=blue", "external_ids:ofctl-agent.ip=10.100.1.77",
		"external_ids:ofctl-agent.docker-endpoint=deadbeef0000")
	sent, recv := dkPing(t, hb, "cb", a, 8, func() {
		ha.agent.Stop(syscall.SIGKILL)
		ha.agent.Start(t)
		ha.agent.WaitReady(t, 20*time.Second)
	})
	testbed.Eventually(t, 10*time.Second, func() bool {
		return !strings.Contains(ha.node.Vsctl(t, "list-ports", "br-int"), "dkhdeadbeef0000")
	}, "the dead endpoint's port was not removed")
	t.Logf("cb -> ca across ha's agent SIGKILL+restart: %d sent, %d received (%d lost)", sent, recv, sent-recv)
	if recv == 0 || sent-recv > 2 {
		t.Errorf("agent SIGKILL+restart: %d of %d pings lost", sent-recv, sent)
	}
	port, _ := dockerplugin.VethNames(ha.endpointID(t, "old"))
	ha.docker.Run(t, "rm", "-f", "old")
	if ports := ha.node.Vsctl(t, "list-ports", "br-int"); strings.Contains(ports, port) {
		t.Errorf("rm -f after the agent's restart left port %s: %s", port, ports)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return dkFlowsWith(t, ha.node, old) == 0 }, "flows of %s left", old)
	if n := ha.run(t, "new", "--stop-timeout", "1"); n != old {
		t.Logf("new container after the restart got %s (old had %s)", n, old)
	}
	if ok, out := ha.ping("new", hb.addr(t, "cb"), 2); !ok {
		t.Errorf("container started after the agent's restart: %s", out)
	}
	ha.docker.Run(t, "rm", "-f", "new")

	sent, recv = dkPing(t, hb, "cb", a, 25, func() {
		ha.docker.Stop(t)
		ha.docker.Start(t)
		testbed.Eventually(t, 20*time.Second, func() bool {
			out, err := ha.docker.RunErr("inspect", "--format", "{{.State.Running}}", "ca")
			return err == nil && strings.TrimSpace(out) == "true"
		}, "ca (--restart=always) not running again after dockerd's restart")
	})
	again := ha.addr(t, "ca")
	t.Logf("cb -> ca across ha's dockerd restart: %d sent, %d received (%d lost); ca had %s, has %s", sent, recv, sent-recv, a, again)
	if again != a {
		t.Errorf("ca came back with %s, had %s", again, a)
	}
	if ok, out := hb.ping("cb", again, 3); !ok {
		t.Errorf("cb -> ca after dockerd's restart: %s", out)
	}
	if got := ha.links(t); len(got) != 1 {
		t.Errorf("veths on ha after dockerd's restart: %v, want ca's alone", got)
	}

	// The agent down: docker run fails, says why, leaves nothing.
	ha.agent.Stop(syscall.SIGTERM)
	start := time.Now()
	out, err := ha.docker.RunErr("run", "--rm", "--network", "blue", ha.img, "true")
	took := time.Since(start)
	t.Logf("docker run with the agent stopped failed after %v: %s", took.Round(100*time.Millisecond), strings.TrimSpace(out))
	if err == nil || !strings.Contains(out, "ofctl-agent") {
		t.Errorf("docker run with the agent stopped: err %v, %s", err, out)
	}
	if got := ha.links(t); len(got) != 1 {
		t.Errorf("veths on ha after the failed run: %v, want ca's alone", got)
	}
	ha.agent.Start(t)
	ha.agent.WaitReady(t, 20*time.Second)
	if ok, out := hb.ping("cb", again, 2); !ok {
		t.Errorf("cb -> ca after the agent came back: %s", out)
	}

	// ovs-vswitchd down, the agent up: docker run fails at once.
	ha.node.KillVswitchd(t)
	testbed.Eventually(t, 10*time.Second, func() bool { return !ha.agent.Ready() }, "agent still ready without ovs-vswitchd")
	start = time.Now()
	out, err = ha.docker.RunErr("run", "--rm", "--network", "blue", ha.img, "true")
	took = time.Since(start)
	t.Logf("docker run without ovs-vswitchd failed after %v: %s", took.Round(10*time.Millisecond), strings.TrimSpace(out))
	if err == nil || !strings.Contains(out, "cannot install endpoints now") {
		t.Errorf("docker run without ovs-vswitchd: err %v, %s", err, out)
	}
	if got := ha.links(t); len(got) != 1 {
		t.Errorf("veths on ha after the failed run: %v, want ca's alone", got)
	}
	ha.node.StartVswitchd(t)
	ha.agent.WaitReady(t, 20*time.Second)
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := hb.ping("cb", again, 1); return ok }, "cb never reached ca after ovs-vswitchd came back")
}

// TestDockerPluginParallel: 50 containers started at once on one host get
// 50 distinct addresses of its range and their names on their ports, and
// every one reaches a container on the other host.
func TestDockerPluginParallel(t *testing.T) {
	const n = 50
	hosts := dkSetup(t, "ha", "hb")
	ha, hb := hosts[0], hosts[1]
	b := hb.run(t, "cb")
	start := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := ha.docker.RunErr("run", "-d", "--name", fmt.Sprintf("p%d", i), "--network", "blue", "--stop-timeout", "1", ha.img, "sleep", "3600")
			if err != nil {
				errs[i] = fmt.Errorf("%v: %s", err, out)
			}
		})
	}
	wg.Wait()
	t.Logf("%d containers started in parallel in %v", n, time.Since(start).Round(100*time.Millisecond))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		a := ha.addr(t, name)
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s both have %s", name, other, a)
		}
		if !netip.MustParsePrefix("10.100.1.0/24").Contains(a) {
			t.Errorf("%s has %s, outside ha's range", name, a)
		}
		seen[a] = name
	}
	if got := len(ha.links(t)); got != n {
		t.Errorf("%d veths on ha, want %d", got, n)
	}
	// Every port carries its container's name (the plugin asks the engine
	// after Join: one request per network for all the endpoints waiting).
	unnamed := func() []string {
		var out []string
		for _, line := range strings.Split(ha.node.Vsctl(t, "--columns=name,external_ids", "--format=csv", "--no-headings", "find", "Interface",
			"external_ids:"+endpoint.KeyOwner+"="+dockerplugin.OwnerDocker), "\n") {
			if line != "" && !regexp.MustCompile(endpoint.KeyName+`=p[0-9]+\b`).MatchString(line) {
				out = append(out, line)
			}
		}
		return out
	}
	testbed.Eventually(t, 40*time.Second, func() bool { return len(unnamed()) == 0 }, "ports without their container's name: %q", unnamed())
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		port, _ := ha.ofport(t, name)
		if ext := ha.node.Vsctl(t, "get", "interface", port, "external_ids:"+endpoint.KeyName); strings.Trim(strings.TrimSpace(ext), `"`) != name {
			t.Errorf("%s's port %s is named %s", name, port, ext)
		}
	}
	failed := make([]string, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("p%d", i)
			ok, out := false, ""
			for try := 0; try < 5 && !ok; try++ { // the first packets may race the other side's ARP
				ok, out = ha.ping(name, b, 1)
			}
			if !ok {
				failed[i] = name + ": " + out
			}
		})
	}
	wg.Wait()
	for _, f := range failed {
		if f != "" {
			t.Errorf("no answer from cb (%s): %s", b, f)
		}
	}
}

// TestReadmeDocker runs the shell block of the README's "With Docker"
// section as written, each line on the host its comment names (host1 is
// ha, host2 hb), with the test image tagged busybox.
func TestReadmeDocker(t *testing.T) {
	hosts := dkSetup(t, "ha", "hb")
	b, err := os.ReadFile(filepath.Join(dmRepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "## With Docker")
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	for _, h := range hosts {
		h.docker.Run(t, "network", "rm", "blue") // the README makes it
		h.docker.Run(t, "tag", h.img, "busybox")
	}
	var on []*dkHost
	ran := 0
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "# on host1 and host2"):
			on = hosts
		case strings.HasPrefix(line, "# host1"):
			on = hosts[:1]
		case strings.HasPrefix(line, "# host2"):
			on = hosts[1:]
		case strings.TrimSpace(line) == "":
		default:
			cmd, _, _ := strings.Cut(line, "   #")
			for _, h := range on {
				c := exec.Command("sh", "-c", cmd)
				c.Env = append(os.Environ(), h.docker.Env()...)
				out, err := c.CombinedOutput()
				t.Logf("%s$ %s\n%s", h.name, cmd, out)
				if err != nil {
					t.Fatalf("%s on %s: %v", cmd, h.name, err)
				}
				ran++
			}
		}
	}
	if ran < 5 {
		t.Fatalf("ran %d commands of the README's Docker block", ran)
	}
}

// TestDemoDocker runs `make demo-docker` from a checkout as a user does:
// every check of the demo passes, the Docker phase included (docker run on
// both hosts, a container plumbed by attach and one by docker run on one
// network); `make demo-down` then leaves no namespace, process, file or
// cgroup of the instance (its engines' containers included).
func TestDemoDocker(t *testing.T) {
	testbed.RequireDocker(t)
	testbed.RequireTools(t, "make", "git", "curl", "tcpdump")
	dir := dmCheckout(t, dmRepoRoot(t))
	t.Cleanup(func() { _ = dmCommand(dir, "make", "demo-down").Run() })
	r := dmStartTarget(t, dir, "demo-docker")
	r.waitOK(t)
	out := r.out.String()
	for _, want := range []string{"== With Docker", "ok    host-b: a container reaches web on host-a across the tunnel",
		"ok    b1 (plumbed with attach) -> web (docker run): one network", "ok    docker rm -f web: its port is gone"} {
		if !strings.Contains(out, want) {
			t.Errorf("make demo-docker: %q missing:\n%s", want, out)
		}
	}
	inst := r.instance(t)
	s := dmObserve(t, inst)
	s.requireUp(t)
	dmMake(t, dir, "demo-down")
	s.requireGone(t)
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "ofdemo-"+inst.id+"-docker-*")); len(left) > 0 {
		t.Errorf("cgroups left after make demo-down: %v", left)
	}
}

// TestDockerPluginDockerdCrash: dockerd SIGKILLed (a crash, or a reboot as
// far as dockerd knows) and started again: its --restart=always container
// comes back connected, and no port or veth of the dead endpoint stays.
func TestDockerPluginDockerdCrash(t *testing.T) {
	hosts := dkSetup(t, "ha", "hb")
	ha, hb := hosts[0], hosts[1]
	a := ha.run(t, "ca", "--restart=always", "--stop-timeout", "1")
	hb.run(t, "cb", "--stop-timeout", "1")
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := hb.ping("cb", a, 1); return ok }, "cb never reached ca")
	ha.docker.Kill(t)
	ha.docker.Start(t)
	testbed.Eventually(t, 30*time.Second, func() bool {
		out, err := ha.docker.RunErr("inspect", "--format", "{{.State.Running}} {{.NetworkSettings.Networks.blue.IPAddress}}", "ca")
		return err == nil && strings.HasPrefix(out, "true 10.")
	}, "ca (--restart=always) not running again after dockerd's crash")
	again := ha.addr(t, "ca")
	t.Logf("ca had %s, has %s after dockerd's crash", a, again)
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := hb.ping("cb", again, 1); return ok }, "cb never reached ca after dockerd's crash")
	port, _ := dockerplugin.VethNames(ha.endpointID(t, "ca"))
	var dk []string
	for _, p := range strings.Fields(ha.node.Vsctl(t, "list-ports", "br-int")) {
		if strings.HasPrefix(p, "dk") {
			dk = append(dk, p)
		}
	}
	if len(dk) != 1 || dk[0] != port {
		t.Errorf("ports on ha after dockerd's crash: %v, want [%s]", dk, port)
	}
	if got := ha.links(t); len(got) != 1 || got[0] != port {
		t.Errorf("veths on ha after dockerd's crash: %v, want [%s]", got, port)
	}
}

// TestDockerPluginLiveRestore: with live-restore, a dockerd restart leaves
// the containers and their endpoints alone: no ping lost, the same
// endpoint, and the container is removed cleanly afterwards.
func TestDockerPluginLiveRestore(t *testing.T) {
	hosts := dkSetupWith(t, testbed.DockerOpts{Daemon: map[string]any{"live-restore": true}}, "ha", "hb")
	ha, hb := hosts[0], hosts[1]
	a := ha.run(t, "ca", "--stop-timeout", "1")
	hb.run(t, "cb", "--stop-timeout", "1")
	ep := ha.endpointID(t, "ca")
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := hb.ping("cb", a, 1); return ok }, "cb never reached ca")
	sent, recv := dkPing(t, hb, "cb", a, 10, func() {
		ha.docker.Stop(t)
		ha.docker.Start(t)
	})
	t.Logf("cb -> ca across ha's dockerd restart with live-restore: %d sent, %d received (%d lost)", sent, recv, sent-recv)
	if sent-recv > 1 {
		t.Errorf("live-restore: %d of %d pings lost", sent-recv, sent)
	}
	if again := ha.endpointID(t, "ca"); again != ep {
		t.Errorf("ca's endpoint changed across the restart: %s -> %s", ep, again)
	}
	ha.docker.Run(t, "rm", "-f", "ca")
	if got := ha.links(t); len(got) != 0 {
		t.Errorf("veths after rm -f: %v", got)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { return dkFlowsWith(t, ha.node, a) == 0 }, "flows of %s left", a)
}

// TestDockerPluginPublished: docker run -p 8080:80 on an ofctl-agent
// network answers on the host's address from outside the host (the
// agent's published ports, from the port's ofctl-agent.ports), the
// container's default route is its host's gateway (it reaches the outside
// too), and after docker rm -f the host port no longer answers.
func TestDockerPluginPublished(t *testing.T) {
	testbed.RequireTools(t, "curl")
	hosts, out := dkSetupAll(t, testbed.DockerOpts{}, true, "ha", "hb")
	ha := hosts[0]
	ha.docker.Run(t, "run", "-d", "--name", "web", "--network", "blue", "-p", "8080:80", ha.img, "httpd", "-f", "-p", "80", "-h", "/etc")
	want := strings.TrimSpace(ha.docker.Run(t, "inspect", "--format", "{{.Config.Hostname}}", "web"))
	url := "http://" + out.HostAddr.String() + ":8080/hostname"
	var got string
	testbed.Eventually(t, 15*time.Second, func() bool {
		o, err := out.NS.Exec("curl", "-sS", "--max-time", "2", url)
		got = strings.TrimSpace(o)
		return err == nil && got == want
	}, "curl %s from outside never answered web's hostname %q (last: %q)", url, want, got)
	t.Logf("from outside: curl %s -> %s", url, got)
	if ok, o := ha.ping("web", out.Addr, 2); !ok {
		t.Errorf("web -> outside %s through its gateway: %s", out.Addr, o)
	}
	ha.docker.Run(t, "rm", "-f", "web")
	testbed.Eventually(t, 15*time.Second, func() bool {
		_, err := out.NS.Exec("curl", "-sS", "--max-time", "2", url)
		return err != nil
	}, "%s still answers after docker rm -f web", url)
}
