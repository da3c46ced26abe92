package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// plVictims captures inbound packets on each victim's eth0.
func plVictims(t *testing.T, victims ...*plEP) []*plCapture {
	caps := make([]*plCapture, len(victims))
	for i, v := range victims {
		caps[i] = plStartCapture(t, v.c.NS, "eth0", "-Q", "in")
	}
	return caps
}

// plSpoofCase is one way a container tries to pass as someone else.
type plSpoofCase struct {
	name   string
	send   func(t *testing.T)
	min    uint64 // packets the sender's spoof-drop flow must count
	filter string // tcpdump filter for what no victim may receive
	trace  string // ofproto/trace packet, for diagnosis
}

// spoofCases: s forges a source IP (an unassigned address of its own range),
// a source MAC (that address's derived MAC), and sends ARP claiming the
// first victim's address.
func plSpoofCases(s *plEP, victims []*plEP) []plSpoofCase {
	forgedIP := netip.MustParseAddr("10.100.1.99")
	forgedMAC := arp.DerivedMAC(forgedIP)
	v1, v2 := victims[0], victims[1]
	pingVictims := func(t *testing.T, extra ...string) {
		for _, v := range victims {
			if r := plPing(s, v.ip(), extra...); r.received != 0 || r.sent != 2 {
				t.Errorf("spoofed ping %s -> %s: want 2 sent and 0 received:\n%s", s.name, v.name, r.output)
			}
		}
	}
	icmp := func(mac string, ip netip.Addr) string {
		return fmt.Sprintf("in_port=%d,icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s", s.ep.OFPort, mac, v1.ep.MAC, ip, v1.ip())
	}
	return []plSpoofCase{
		{"forged source IP", func(t *testing.T) {
			s.c.Exec(t, "ip", "addr", "add", forgedIP.String()+"/32", "dev", "eth0")
			defer s.c.Exec(t, "ip", "addr", "del", forgedIP.String()+"/32", "dev", "eth0")
			pingVictims(t, "-I", forgedIP.String())
		}, 4, "host " + forgedIP.String(), icmp(s.ep.MAC.String(), forgedIP)},
		{"forged source MAC", func(t *testing.T) {
			s.c.Exec(t, "ip", "link", "set", "eth0", "address", forgedMAC.String())
			defer s.c.Exec(t, "ip", "link", "set", "eth0", "address", s.ep.MAC.String())
			pingVictims(t)
		}, 4, "ether src " + forgedMAC.String(), icmp(forgedMAC.String(), s.ip())},
		{"ARP claiming another address", func(t *testing.T) {
			err := plSendRaw(s.c.NS, "eth0",
				plEther(plBroadcast, s.ep.MAC, plEthARP, plARP(1, s.ep.MAC, v1.ip(), nil, v1.ip())), // gratuitous
				plEther(plBroadcast, s.ep.MAC, plEthARP, plARP(1, s.ep.MAC, v1.ip(), nil, v2.ip())),
				plEther(v2.ep.MAC, s.ep.MAC, plEthARP, plARP(2, s.ep.MAC, v1.ip(), v2.ep.MAC, v2.ip())))
			if err != nil {
				t.Fatal(err)
			}
		}, 3, "arp and arp[14:4] = " + plIPHex(v1.ip()), fmt.Sprintf(
			"in_port=%d,arp,dl_src=%s,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_sha=%s,arp_spa=%s,arp_tpa=%s",
			s.ep.OFPort, s.ep.MAC, s.ep.MAC, v1.ip(), v1.ip())},
	}
}

// testSpoofing: a container sending with a forged source IP, a forged
// source MAC, or ARP claiming another container's address reaches nobody:
// the victims' captures stay empty and its port's spoof-drop flow counts
// the packets. A legitimate ping afterwards shows the captures work.
func (b *plBed) testSpoofing(t *testing.T) {
	s, victims := b.ep("ablue1"), []*plEP{b.ep("ablue2"), b.ep("bblue1")}
	for _, v := range victims { // so that IPv4 is sent at once, not only ARP
		s.c.Exec(t, "ip", "neigh", "replace", v.ip().String(), "lladdr", plMACSeenBy(s, v).String(),
			"dev", "eth0", "nud", "permanent")
	}
	cases := plSpoofCases(s, victims)
	caps := plVictims(t, victims...)
	n := b.nodes[s.host]
	filter, match := ofTable(pipeline.SpoofGuard)+fmt.Sprintf(",in_port=%d", s.ep.OFPort), fmt.Sprintf("in_port=%d", s.ep.OFPort)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := plFlowPackets(t, n, filter, 100, match)
			c.send(t)
			got := plWaitPackets(t, n, filter, 100, match, before+c.min) - before
			t.Logf("%s: spoof-drop flow of %s (port %d) counted %d packets", c.name, s.name, s.ep.OFPort, got)
			if got < c.min {
				t.Errorf("spoof-drop flow counted %d packets, want >= %d\n%s", got, c.min, plDiagnose(t, n, c.trace))
			}
		})
	}
	for _, v := range victims { // control: the captures see legitimate traffic
		if r := plPing(s, v.ip()); r.received == 0 {
			t.Errorf("legitimate ping %s -> %s after the spoofing failed:\n%s", s.name, v.name, r.output)
		}
	}
	plStopAll(caps...)
	for i, v := range victims {
		for _, c := range cases {
			if got := caps[i].read(t, c.filter); len(got) != 0 {
				t.Errorf("%s: victim %s received %d packets:\n%s", c.name, v.name, len(got), strings.Join(got, "\n"))
			}
		}
		if legit := caps[i].read(t, fmt.Sprintf("icmp and src host %s and ether src %s", s.ip(), s.ep.MAC)); len(legit) == 0 {
			t.Errorf("capture on %s missed the legitimate ping: it proves nothing", v.name)
		}
	}
}
