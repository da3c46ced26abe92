package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The throughput test bed: a client and a server container on br-int
// bridges, and the two ways to program those bridges that are compared.

const (
	dpGREPort   = 1
	dpVNI       = 100
	dpIperfPort = "5201"
)

// dpNet is the network of both containers.
var dpNet = pipeline.Network{Name: "blue", VNI: dpVNI, Subnet: netip.MustParsePrefix("10.100.0.0/16")}

// dpHost is one node of the bed with the state its pipeline is built from.
type dpHost struct {
	node      *testbed.Node
	conn      *openflow.Conn
	state     pipeline.State
	greRemote string // the peer's underlay address, for the NORMAL mode's fixed GRE port; "" on a single node
}

// dpBed is the topology of one benchmark: the nodes the traffic crosses and
// the iperf3 client and server.
type dpBed struct {
	hosts          []*dpHost
	client, server *testbed.Container
}

// dpRequireTools fails (not skips) without the programs the measurement runs.
func dpRequireTools(b *testing.B) {
	b.Helper()
	for _, tool := range []string{"iperf3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: scripts/setup-host.sh installs it (apt-get install %s): %v", tool, tool, err)
		}
	}
}

// dpAddHost makes a node with br-int and a flow-based GRE port (as the agent
// configures it), connected over OpenFlow the way the agent connects.
func dpAddHost(b *testing.B, name string) *dpHost {
	b.Helper()
	n := testbed.NewNode(b, name)
	n.AddBridge(b, "br-int")
	n.Vsctl(b, "add-port", "br-int", "gre0", "--", "set", "interface", "gre0", "type=gre",
		"options:remote_ip=flow", "options:key=flow", "ofport_request="+strconv.Itoa(dpGREPort))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: n.MgmtAddr("br-int")})
	if err != nil {
		b.Fatalf("%s: dial: %v", name, err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return &dpHost{node: n, conn: c, state: pipeline.State{TunnelPort: dpGREPort, Networks: []pipeline.Network{dpNet}}}
}

// addEndpoint attaches a container with address ip (derived MAC, as attach
// does) at ofport, adds it to the host's state, and turns TX checksum
// offload (and with it TSO) off inside it: ovs-vswitchd's userspace
// datapath forwards the frames it reads from a veth as they are, so a
// partial checksum would reach the receiver unfinished and TCP would stall.
func (h *dpHost) addEndpoint(b *testing.B, name string, ip netip.Addr, ofport uint32) *testbed.Container {
	b.Helper()
	c := h.node.AddContainer(b, name, testbed.ContainerOpts{
		Addr: netip.PrefixFrom(ip, dpNet.Subnet.Bits()), MAC: arp.DerivedMAC(ip)})
	c.Exec(b, "ethtool", "-K", c.IfName, "tx", "off")
	c.AttachTo(b, "br-int", int(ofport), nil)
	h.state.Endpoints = append(h.state.Endpoints, pipeline.Endpoint{
		Network: dpNet.Name, Port: c.HostIf, OFPort: ofport, MAC: c.MAC, IP: ip})
	return c
}

// addRemote adds a remote host with its range of dpNet to the state.
func (h *dpHost) addRemote(name string, underlay netip.Addr, rng netip.Prefix) {
	h.state.Hosts = append(h.state.Hosts, pipeline.RemoteHost{
		Name: name, TunnelIP: underlay, Ranges: map[string]netip.Prefix{dpNet.Name: rng}})
}

// dpSameHost is two containers on one node. The state also has a remote
// host, as every real host has, though no traffic goes there.
func dpSameHost(b *testing.B) *dpBed {
	h := dpAddHost(b, "dps")
	h.addRemote("peer", netip.MustParseAddr("192.0.2.2"), netip.MustParsePrefix("10.100.2.0/24"))
	return &dpBed{hosts: []*dpHost{h},
		client: h.addEndpoint(b, "dpc1", netip.MustParseAddr("10.100.1.11"), 11),
		server: h.addEndpoint(b, "dpc2", netip.MustParseAddr("10.100.1.12"), 12)}
}

// dpTwoHosts is one container on each of two nodes joined by the GRE
// underlay.
func dpTwoHosts(b *testing.B) *dpBed {
	ha, hb := dpAddHost(b, "dga"), dpAddHost(b, "dgb")
	ua, ub := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24")
	testbed.Underlay(b, ha.node, hb.node, ua, ub)
	ha.addRemote("dgb", ub.Addr(), netip.MustParsePrefix("10.100.2.0/24"))
	hb.addRemote("dga", ua.Addr(), netip.MustParsePrefix("10.100.1.0/24"))
	ha.greRemote, hb.greRemote = ub.Addr().String(), ua.Addr().String()
	return &dpBed{hosts: []*dpHost{ha, hb},
		client: ha.addEndpoint(b, "dgc1", netip.MustParseAddr("10.100.1.11"), 11),
		server: hb.addEndpoint(b, "dgc2", netip.MustParseAddr("10.100.2.11"), 11)}
}

// pipelineMode programs every bridge with the agent's pipeline (pipeline.Build
// of the host's state, one bundle through pkg/openflow), the GRE port
// flow-based as the agent configures it.
func (d *dpBed) pipelineMode(b *testing.B) {
	b.Helper()
	for _, h := range d.hosts {
		h.node.Vsctl(b, "set", "interface", "gre0", "options:remote_ip=flow", "options:key=flow")
		h.node.Ofctl(b, "del-flows", "br-int")
		flows := pipeline.Build(h.state)
		if err := installBundle(context.Background(), h.conn, addMods(b, flows)); err != nil {
			b.Fatalf("%s: install the pipeline: %v", h.node.Name, err)
		}
		check(b, h.node, len(flows))
	}
}

// normalMode programs every bridge with one `priority=0 actions=NORMAL`
// flow; across hosts the GRE port gets a fixed remote_ip and key, the seed
// recipe's "GRE port to the other host".
func (d *dpBed) normalMode(b *testing.B) {
	b.Helper()
	for _, h := range d.hosts {
		if h.greRemote != "" {
			h.node.Vsctl(b, "set", "interface", "gre0", "options:remote_ip="+h.greRemote, "options:key="+strconv.Itoa(dpVNI))
		}
		h.node.Ofctl(b, "del-flows", "br-int")
		h.node.Ofctl(b, "add-flow", "br-int", "priority=0,actions=NORMAL")
		check(b, h.node, 1)
	}
}

// startServer runs `iperf3 -s` in the server container until the benchmark
// ends (the process is killed by pid; the namespace's removal would too).
func (d *dpBed) startServer(b *testing.B) {
	b.Helper()
	cmd := exec.Command("ip", "netns", "exec", string(d.server.NS), "iperf3", "-s", "-p", dpIperfPort)
	if err := cmd.Start(); err != nil {
		b.Fatalf("iperf3 server: %v", err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testbed.Eventually(b, 10*time.Second, func() bool {
		out, _ := d.server.NS.Exec("ss", "-Hltn", "sport = :"+dpIperfPort)
		return strings.TrimSpace(out) != ""
	}, "iperf3 server not listening")
}

// warm proves the mode forwards (a few pings must all pass) and leaves
// the ARP entries and datapath flows in place.
func (d *dpBed) warm(b *testing.B, mode string) {
	b.Helper()
	if ok, out := d.client.Ping(d.server.Addr.Addr(), 5); !ok {
		b.Fatalf("%s: client cannot ping the server:\n%s", mode, out)
	}
}

// iperfResult is what one iperf3 run reports (its -J output).
type iperfResult struct {
	Intervals []struct {
		Sum struct {
			Bytes float64 `json:"bytes"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs one TCP stream from client to server for secs seconds, the
// first one (slow start, first packets) omitted.
func (d *dpBed) iperf(b *testing.B, secs int) iperfResult {
	b.Helper()
	out, err := d.client.NS.Exec("iperf3", "-c", d.server.Addr.Addr().String(), "-p", dpIperfPort,
		"-t", strconv.Itoa(secs), "-O", "1", "-J")
	var r iperfResult
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || err != nil || r.Error != "" {
		b.Fatalf("iperf3: %v %v %s\n%s", err, jerr, r.Error, out)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		b.Fatalf("iperf3 received nothing:\n%s", out)
	}
	return r
}

// sentBytes is what the client sent over the whole run, omitted second included.
func (r iperfResult) sentBytes() float64 {
	var n float64
	for _, i := range r.Intervals {
		n += i.Sum.Bytes
	}
	return n
}

// dpStats is what ovs-vswitchd's userspace datapath did during a run,
// summed over the bed's nodes.
type dpStats struct {
	packets, upcalls, emcHits, megaflowHits int
	megaflows                               int     // datapath flows after the run
	dump                                    string  // the first node's dpctl/dump-flows
	cpu                                     float64 // ovs-vswitchd CPU seconds during the run (user + system)
}

var dpStatRE = regexp.MustCompile(`(packets received|emc hits|megaflow hits|miss with success upcall): (\d+)`)

// clearStats zeroes the datapath counters before a run and returns
// ovs-vswitchd's CPU time so far.
func (d *dpBed) clearStats(b *testing.B) float64 {
	var cpu float64
	for _, h := range d.hosts {
		h.node.Appctl(b, "dpif-netdev/pmd-stats-clear")
		cpu += procCPU(b, h.node.VswitchdPid()).Seconds()
	}
	return cpu
}

// stats reads the datapath counters and flows after a run; cpu0 is what
// clearStats returned.
func (d *dpBed) stats(b *testing.B, cpu0 float64) dpStats {
	s := dpStats{cpu: -cpu0}
	for i, h := range d.hosts {
		s.cpu += procCPU(b, h.node.VswitchdPid()).Seconds()
		for _, m := range dpStatRE.FindAllStringSubmatch(h.node.Appctl(b, "dpif-netdev/pmd-stats-show"), -1) {
			v, _ := strconv.Atoi(m[2])
			switch m[1] {
			case "packets received":
				s.packets += v
			case "emc hits":
				s.emcHits += v
			case "megaflow hits":
				s.megaflowHits += v
			default:
				s.upcalls += v
			}
		}
		dump := h.node.Appctl(b, "dpctl/dump-flows")
		s.megaflows += strings.Count(dump, "actions:")
		if i == 0 {
			s.dump = dump
		}
	}
	return s
}

func (s dpStats) String() string {
	return fmt.Sprintf("%d packets: %d EMC hits, %d megaflow hits, %d upcalls; %d datapath flows; ovs-vswitchd %.2f CPU s",
		s.packets, s.emcHits, s.megaflowHits, s.upcalls, s.megaflows, s.cpu)
}
