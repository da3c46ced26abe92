package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The pipeline test bed: two hosts with real OVS joined by an underlay, a GRE
// port on each br-int, two networks with two containers per network per
// host, and each host's pipeline.Build installed through pkg/openflow.

const plGREPort = 1

// plHostDef is one host: name and underlay address.
type plHostDef struct {
	name     string
	underlay netip.Prefix
}

// plNetDef is one network and the range of each host (same order as hosts).
type plNetDef struct {
	net    pipeline.Network
	ranges []netip.Prefix
}

func plHosts() []plHostDef {
	return []plHostDef{
		{"ha", netip.MustParsePrefix("192.0.2.1/24")},
		{"hb", netip.MustParsePrefix("192.0.2.2/24")},
	}
}

func plNets() []plNetDef {
	p := netip.MustParsePrefix
	return []plNetDef{
		{pipeline.Network{Name: "blue", VNI: 100, Subnet: p("10.100.0.0/16")}, []netip.Prefix{p("10.100.1.0/24"), p("10.100.2.0/24")}},
		{pipeline.Network{Name: "red", VNI: 200, Subnet: p("10.200.0.0/16")}, []netip.Prefix{p("10.200.1.0/24"), p("10.200.2.0/24")}},
	}
}

// plNonDerivedMAC is the MAC of hb's second blue container, which is not
// derived from its IP: remote hosts reach it through the rewrite flow.
var plNonDerivedMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0xb1, 0x0e, 0x02}

// plEP is a container attached to br-int and its endpoint in the state.
type plEP struct {
	name string
	host int
	vni  uint32
	c    *testbed.Container
	ep   pipeline.Endpoint
}

func (e *plEP) ip() netip.Addr { return e.ep.IP }

// plBed is the running topology.
type plBed struct {
	nodes  []*testbed.Node
	states []pipeline.State
	conns  []*openflow.Conn
	eps    []*plEP
}

func plNewBed(t *testing.T) *plBed {
	t.Helper()
	hosts := plHosts()
	b := &plBed{}
	for _, h := range hosts {
		n := testbed.NewNode(t, h.name)
		n.AddBridge(t, "br-int")
		n.Vsctl(t, "add-port", "br-int", "gre0", "--", "set", "interface", "gre0", "type=gre",
			"options:remote_ip=flow", "options:key=flow", "ofport_request="+strconv.Itoa(plGREPort))
		b.nodes = append(b.nodes, n)
	}
	testbed.Underlay(t, b.nodes[0], b.nodes[1], hosts[0].underlay, hosts[1].underlay)
	for hi := range hosts {
		for ni, nd := range plNets() {
			for i := 1; i <= 2; i++ {
				b.eps = append(b.eps, b.addEP(t, hi, ni, nd, i))
			}
		}
	}
	for hi := range hosts {
		b.states = append(b.states, b.state(hi))
		b.conns = append(b.conns, plInstall(t, b.nodes[hi], pipeline.Build(b.states[hi])))
	}
	return b
}

// addEP creates container i of network nd on host hi, with a /16 address,
// a default route through eth0 (so cross-network packets really leave it),
// attached to br-int.
func (b *plBed) addEP(t *testing.T, hi, ni int, nd plNetDef, i int) *plEP {
	t.Helper()
	ip := nd.ranges[hi].Addr()
	for range 10 + i {
		ip = ip.Next()
	}
	mac := arp.DerivedMAC(ip)
	if hi == 1 && nd.net.Name == "blue" && i == 2 {
		mac = plNonDerivedMAC
	}
	name := fmt.Sprintf("%c%s%d", 'a'+hi, nd.net.Name, i)
	ofport := uint32(10*(ni+1) + i)
	c := b.nodes[hi].AddContainer(t, name, testbed.ContainerOpts{
		Addr: netip.PrefixFrom(ip, nd.net.Subnet.Bits()), MAC: mac})
	c.Exec(t, "ip", "route", "add", "default", "dev", "eth0")
	c.AttachTo(t, "br-int", int(ofport), nil)
	return &plEP{name: name, host: hi, vni: nd.net.VNI, c: c, ep: pipeline.Endpoint{
		Network: nd.net.Name, Port: c.HostIf, OFPort: ofport, MAC: c.MAC, IP: ip}}
}

// state is host hi's desired state: its endpoints, every network, and the
// other host with its ranges.
func (b *plBed) state(hi int) pipeline.State {
	s := pipeline.State{TunnelPort: plGREPort}
	for _, nd := range plNets() {
		s.Networks = append(s.Networks, nd.net)
	}
	for _, e := range b.eps {
		if e.host == hi {
			s.Endpoints = append(s.Endpoints, e.ep)
		}
	}
	for oi, h := range plHosts() {
		if oi == hi {
			continue
		}
		rh := pipeline.RemoteHost{Name: h.name, TunnelIP: h.underlay.Addr(), Ranges: map[string]netip.Prefix{}}
		for _, nd := range plNets() {
			rh.Ranges[nd.net.Name] = nd.ranges[oi]
		}
		s.Hosts = append(s.Hosts, rh)
	}
	return s
}

// plInstall connects to the bridge's management socket the way the agent
// does and adds every flow in one atomic bundle.
func plInstall(t *testing.T, n *testbed.Node, flows []flow.Flow) *openflow.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: n.MgmtAddr("br-int")})
	if err != nil {
		t.Fatalf("%s: dial: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	bu, err := c.Bundle(ctx)
	if err != nil {
		t.Fatalf("%s: open bundle: %v", n.Name, err)
	}
	for _, f := range flows {
		fm, err := f.FlowMod(openflow13.FC_ADD)
		if err != nil {
			t.Fatalf("%s: encode %s: %v", n.Name, f, err)
		}
		if err := bu.Add(fm); err != nil {
			t.Fatalf("%s: bundle add: %v", n.Name, err)
		}
	}
	if err := bu.Commit(ctx); err != nil {
		t.Fatalf("%s: bundle commit: %v", n.Name, err)
	}
	return c
}

// macSeenBy is the MAC that from's kernel learns for to's address: the real
// one on the same host, the derived one across hosts (remote hosts answer
// ARP for a whole range with derived MACs).
func plMACSeenBy(from, to *plEP) net.HardwareAddr {
	if from.host == to.host {
		return to.ep.MAC
	}
	return arp.DerivedMAC(to.ip())
}

// plTracePacket is the ofproto/trace description of an ICMP packet from
// one endpoint to another, as it enters the sender's bridge.
func plTracePacket(from, to *plEP) string {
	return fmt.Sprintf("in_port=%d,icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s",
		from.ep.OFPort, from.ep.MAC, plMACSeenBy(from, to), from.ip(), to.ip())
}

// plPair is one ping of the matrix.
type plPair struct{ from, to *plEP }

func (p plPair) String() string {
	return p.from.name + "->" + p.to.name
}

// plPingResult is the outcome of one `ping -c 2 -W 1 -i 0.2`.
type plPingResult struct {
	ok             bool // exit status 0: at least one reply
	sent, received int
	output         string
}

var plPingRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// plPingAll runs the pings concurrently (a bounded number at a time).
func plPingAll(pairs []plPair) []plPingResult {
	res := make([]plPingResult, len(pairs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res[i] = plPing(p.from, p.to.ip())
		}()
	}
	wg.Wait()
	return res
}

func plPing(from *plEP, dst netip.Addr, extra ...string) plPingResult {
	args := append([]string{"ping", "-n", "-c", "2", "-W", "1", "-i", "0.2"}, extra...)
	out, err := from.c.NS.Exec(append(args, dst.String())...)
	r := plPingResult{ok: err == nil, output: out}
	if m := plPingRE.FindStringSubmatch(out); m != nil {
		r.sent, _ = strconv.Atoi(m[1])
		r.received, _ = strconv.Atoi(m[2])
	}
	return r
}
