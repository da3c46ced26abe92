package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestPipelineDatapath proves pkg/pipeline in a real datapath: two hosts
// running OVS, each br-int programmed with pipeline.Build through
// pkg/openflow, GRE between them; containers ping, spoof and get attacked
// from the underlay, and tcpdump and the flow counters say what happened.
func TestPipelineDatapath(t *testing.T) {
	testbed.Require(t)
	b := plNewBed(t)
	if !t.Run("installed", b.testInstalled) {
		t.FailNow()
	}
	t.Run("same network", b.testSameNetwork)
	t.Run("isolation", b.testIsolation)
	t.Run("spoofing", b.testSpoofing)
	t.Run("rogue tunnel", b.testRogueTunnel)
	t.Run("flows per object", b.testFlowsPerObject)
	t.Run("agent stopped", b.testAgentStopped)
}

// testInstalled: what OVS holds (dump-flows, an independent reader) is
// exactly what Build computed, on both hosts.
func (b *plBed) testInstalled(t *testing.T) {
	for hi, n := range b.nodes {
		desired := pipeline.Build(b.states[hi])
		want := make([]string, len(desired))
		for i, f := range desired {
			want[i] = f.String()
		}
		slices.Sort(want)
		got := plFlowsNoStats(t, n)
		if len(got) != len(want) || !slices.Equal(got, want) {
			t.Errorf("%s: OVS has %d flows, Build %d; dump:\n%s\nBuild:\n%s", n.Name, len(got), len(want),
				strings.Join(got, "\n"), flow.Dump(desired))
		}
		t.Logf("%s: %d flows installed in one bundle, dump-flows shows the same %d", n.Name, len(desired), len(got))
	}
}

// plPairs lists every ordered pair of distinct endpoints, same network or not.
func (b *plBed) plPairs(sameNetwork bool) []plPair {
	var out []plPair
	for _, f := range b.eps {
		for _, to := range b.eps {
			if f != to && (f.vni == to.vni) == sameNetwork {
				out = append(out, plPair{f, to})
			}
		}
	}
	return out
}

func (b *plBed) ep(name string) *plEP {
	for _, e := range b.eps {
		if e.name == name {
			return e
		}
	}
	panic("no endpoint " + name)
}

// testSameNetwork: every endpoint reaches every other endpoint of its
// network, on its host and across the tunnel; host a's underlay carries
// GRE with both keys but no ARP (ARP is answered by flows on each host);
// the kernels learned the MACs the flows answered with.
func (b *plBed) testSameNetwork(t *testing.T) {
	a := b.nodes[0]
	capture := plStartCapture(t, a.NS, "ul-"+b.nodes[1].Name)
	pairs := b.plPairs(true)
	results := plPingAll(pairs)
	capture.stop()
	for i, p := range pairs {
		t.Run("ping "+p.String(), func(t *testing.T) {
			if r := results[i]; !r.ok || r.received == 0 {
				t.Errorf("ping %s (%s -> %s) failed:\n%s\n%s", p, p.from.ip(), p.to.ip(), r.output,
					plDiagnose(t, b.nodes[p.from.host], plTracePacket(p.from, p.to)))
			}
		})
	}
	t.Run("underlay carries GRE, no ARP", func(t *testing.T) {
		// Outer IPv4 without options: GRE flags at ip[20], key at ip[24],
		// the inner Ethernet type at ip[40].
		gre := len(capture.read(t, "ip proto 47"))
		inner := func(f string) int { return len(capture.read(t, "ip proto 47 and ip[20:2] = 0x2000 and "+f)) }
		innerIPv4, innerARP := inner("ip[40:2] = 0x0800"), inner("ip[40:2] = 0x0806")
		blue, red := inner("ip[24:4] = 100"), inner("ip[24:4] = 200")
		t.Logf("underlay of %s: %d GRE packets (inner IPv4 %d, inner ARP %d; key 100: %d, key 200: %d)",
			a.Name, gre, innerIPv4, innerARP, blue, red)
		if gre == 0 || innerIPv4 != gre || innerARP != 0 || blue == 0 || red == 0 || blue+red != gre {
			t.Errorf("want GRE > 0, all inner IPv4, no inner ARP, both keys; decoded:\n%s",
				strings.Join(capture.read(t, "ip proto 47", "-e", "-v"), "\n"))
		}
		for _, l := range capture.read(t, "ip proto 47", "-e", "-v") {
			if strings.Contains(l, "ARP") {
				t.Errorf("ARP inside GRE: %s", l)
			}
		}
	})
	t.Run("ARP answered by flows", func(t *testing.T) { b.checkResponders(t) })
	t.Run("rewrite to a non-derived MAC", func(t *testing.T) { b.checkRewrite(t) })
	t.Run("neighbour tables", func(t *testing.T) {
		for _, p := range pairs {
			want := plMACSeenBy(p.from, p.to).String()
			out, _ := p.from.c.NS.Exec("ip", "neigh", "show", p.to.ip().String(), "dev", "eth0")
			if !strings.Contains(out, "lladdr "+want) {
				t.Errorf("%s: neighbour %s is %q, want lladdr %s", p, p.to.ip(), strings.TrimSpace(out), want)
			}
		}
	})
}

// checkResponders: every arp_responder flow of an endpoint or a remote range
// answered at least one request (its counter moved).
func (b *plBed) checkResponders(t *testing.T) {
	for hi, n := range b.nodes {
		s := b.states[hi]
		cookies := map[string]uint64{}
		for _, e := range s.Endpoints {
			cookies["endpoint "+e.Port] = e.Cookie()
		}
		for _, h := range s.Hosts {
			cookies["host "+h.Name] = h.Cookie()
		}
		for who, c := range cookies {
			sum, hit, flows := plSumPackets(t, n, ofTable(pipeline.ARPResponder)+fmt.Sprintf(",cookie=%#x/-1", c))
			if flows == 0 || hit != flows {
				t.Errorf("%s: %s: %d of %d arp_responder flows answered (%d packets)\n%s",
					n.Name, who, hit, flows, sum, n.Ofctl(t, "dump-flows", "br-int", ofTable(pipeline.ARPResponder)))
			}
			t.Logf("%s: arp_responder flows of %s answered %d requests", n.Name, who, sum)
		}
	}
}

// checkRewrite: remote hosts reach the endpoint whose MAC is not derived
// through its rewrite flow (l2_forward, priority 190), so its counter moved.
func (b *plBed) checkRewrite(t *testing.T) {
	found := 0
	for hi, n := range b.nodes {
		for _, f := range pipeline.Build(b.states[hi]) {
			if f.Table != pipeline.L2Forward.ID() || f.Priority != 190 {
				continue
			}
			found++
			got := plWaitPackets(t, n, fmt.Sprintf("table=%d", f.Table), int(f.Priority), f.Match.String(), 1)
			t.Logf("%s: rewrite flow %s carried %d packets", n.Name, f, got)
			if got == 0 {
				t.Errorf("%s: rewrite flow unused: %s", n.Name, f)
			}
		}
	}
	if found != 1 {
		t.Errorf("Build made %d rewrite flows, want 1 (for %s)", found, plNonDerivedMAC)
	}
}

// testIsolation: no endpoint reaches any endpoint of the other network,
// even with the destination's MAC configured statically (so the IPv4
// packets really enter the bridge); l2_forward drops them all and nothing
// enters the tunnel.
func (b *plBed) testIsolation(t *testing.T) {
	pairs := b.plPairs(false)
	for _, p := range pairs {
		p.from.c.Exec(t, "ip", "neigh", "replace", p.to.ip().String(), "lladdr", plMACSeenBy(p.from, p.to).String(),
			"dev", "eth0", "nud", "permanent")
	}
	missBefore := b.l2Misses(t)
	capture := plStartCapture(t, b.nodes[0].NS, "ul-"+b.nodes[1].Name)
	epCaps := plVictims(t, b.eps...)
	results := plPingAll(pairs)
	for i, p := range pairs {
		t.Run("ping "+p.String(), func(t *testing.T) {
			if r := results[i]; r.ok || r.sent != 2 || r.received != 0 {
				t.Errorf("ping %s (%s -> %s): want 2 sent and 0 received:\n%s\n%s", p, p.from.ip(), p.to.ip(),
					r.output, plDiagnose(t, b.nodes[p.from.host], plTracePacket(p.from, p.to)))
			}
		})
	}
	control := b.checkNoLeak(t, capture, epCaps)
	want := uint64(2 * len(pairs))
	deadline := time.Now().Add(5 * time.Second)
	var dropped uint64
	for time.Now().Before(deadline) {
		if dropped = b.l2Misses(t) - missBefore; dropped >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d cross-network pairs: l2_forward miss flows dropped %d packets (want >= %d); "+
		"underlay: no GRE but the %d of the control ping", len(pairs), dropped, want, control)
	if dropped < want {
		t.Errorf("l2_forward dropped %d packets, want >= %d", dropped, want)
	}
}

// checkNoLeak: no endpoint received ICMP from the other network, and the
// underlay carried no GRE, except for a control ping across the tunnel
// (which must show up in both captures, or they prove nothing). It returns
// the control's GRE packet count.
func (b *plBed) checkNoLeak(t *testing.T, underlay *plCapture, epCaps []*plCapture) int {
	ca, cb := b.ep("ablue1"), b.ep("bblue1")
	if r := plPing(ca, cb.ip()); !r.ok {
		t.Errorf("control ping %s -> %s failed:\n%s", ca.name, cb.name, r.output)
	}
	plStopAll(append(epCaps, underlay)...)
	for i, e := range b.eps {
		for _, nd := range plNets() {
			got := epCaps[i].read(t, "icmp and src net "+nd.net.Subnet.String())
			switch {
			case nd.net.VNI != e.vni && len(got) != 0:
				t.Errorf("%s received ICMP from network %s:\n%s", e.name, nd.net.Name, strings.Join(got, "\n"))
			case nd.net.VNI == e.vni && e == cb && len(got) == 0:
				t.Errorf("capture on %s missed the control ping from %s", e.name, ca.name)
			}
		}
	}
	// Inner IPv4 source and destination are at ip[54] and ip[58].
	x, y := plIPHex(ca.ip()), plIPHex(cb.ip())
	control := len(underlay.read(t, fmt.Sprintf("ip proto 47 and ((ip[54:4] = %s and ip[58:4] = %s) or (ip[54:4] = %s and ip[58:4] = %s))", x, y, y, x)))
	if gre := underlay.read(t, fmt.Sprintf("ip proto 47 and not ip[54:4] = %s and not ip[54:4] = %s", x, y)); len(gre) != 0 || control == 0 {
		t.Errorf("underlay capture: %d GRE packets of the control ping (want > 0), %d others (want 0):\n%s",
			control, len(gre), strings.Join(gre, "\n"))
	}
	return control
}

// ofTable selects a pipeline table in ovs-ofctl syntax ("table=5").
func ofTable(t pipeline.Table) string { return fmt.Sprintf("table=%d", t.ID()) }

// l2Misses sums the l2_forward miss counters of both hosts.
func (b *plBed) l2Misses(t *testing.T) uint64 {
	var sum uint64
	for _, n := range b.nodes {
		sum += plFlowPackets(t, n, ofTable(pipeline.L2Forward), 0, "")
	}
	return sum
}

// plIPHex is an IPv4 address as a tcpdump filter constant.
func plIPHex(ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("0x%08x", binary.BigEndian.Uint32(a[:]))
}
