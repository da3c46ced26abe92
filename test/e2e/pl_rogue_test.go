package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// plRogue is a namespace on host a's underlay segment (a port of its
// br-phy) that sends hand-made GRE to host a with any outer source address.
type plRogue struct {
	c      *testbed.Container
	phyMAC net.HardwareAddr // host a's br-phy, the owner of its underlay address
	dst    netip.Addr
}

func plNewRogue(t *testing.T, a *testbed.Node, addr netip.Prefix) *plRogue {
	t.Helper()
	c := a.AddContainer(t, "rogue", testbed.ContainerOpts{Addr: addr})
	a.Vsctl(t, "add-port", testbed.PhyBridge, c.HostIf)
	mac := plMustMAC(t, strings.TrimSpace(a.Exec(t, "cat", "/sys/class/net/"+testbed.PhyBridge+"/address")))
	return &plRogue{c: c, phyMAC: mac, dst: plHosts()[0].underlay.Addr()}
}

// send sends n copies of GRE (outer source src, key) carrying an ICMP echo
// with the given id to victim v, from an address of host b's range.
func (r *plRogue) send(t *testing.T, src netip.Addr, key uint32, v *plEP, id uint16, n int) {
	t.Helper()
	fake := netip.MustParseAddr("10.100.2.99")
	if v.vni == 200 {
		fake = netip.MustParseAddr("10.200.2.99")
	}
	inner := plEther(v.ep.MAC, arp.DerivedMAC(fake), plEthIPv4, plIPv4(fake, v.ip(), 1, plICMPEcho(id, 1)))
	f := plEther(r.phyMAC, r.c.MAC, plEthIPv4, plIPv4(src, r.dst, 47, plGRE(key, inner)))
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = f
	}
	if err := plSendRaw(r.c.NS, r.c.IfName, frames...); err != nil {
		t.Fatal(err)
	}
}

// testRogueTunnel: GRE arriving at host a from an underlay address it does
// not know, with a VNI it does not know, or with the other network's VNI
// is dropped by tunnel_ingress, tunnel_network or l2_forward, and the
// victims receive nothing. The frames come from a rogue namespace on host
// a's underlay segment; the outer source address is chosen per case. A
// packet from a known host with the right VNI must get through (control).
func (b *plBed) testRogueTunnel(t *testing.T) {
	a, hb := b.nodes[0], plHosts()[1].underlay.Addr()
	rogueIP := netip.MustParsePrefix("192.0.2.3/24")
	rogue := plNewRogue(t, a, rogueIP)
	blueV, redV := b.ep("ablue1"), b.ep("ared1")
	cases := []struct {
		name   string
		src    netip.Addr
		key    uint32
		victim *plEP
		table  pipeline.Table // whose miss flow drops it
	}{
		{"unknown underlay address", rogueIP.Addr(), 100, blueV, pipeline.TunnelIngress},
		{"unknown VNI from a known host", hb, 999, blueV, pipeline.TunnelNetwork},
		{"red VNI to a blue endpoint", hb, 200, blueV, pipeline.L2Forward},
		{"blue VNI to a red endpoint", hb, 100, redV, pipeline.L2Forward},
	}
	caps := plVictims(t, blueV, redV)
	capOf := map[*plEP]*plCapture{blueV: caps[0], redV: caps[1]}
	const perCase = 3
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			filter := ofTable(c.table)
			before := plFlowPackets(t, a, filter, 0, "")
			rogue.send(t, c.src, c.key, c.victim, uint16(0x4e00+i), perCase)
			got := plWaitPackets(t, a, filter, 0, "", before+perCase) - before
			t.Logf("%s (tun_src=%s tun_id=%d): %s miss flow dropped %d of %d", c.name, c.src, c.key, c.table, got, perCase)
			if got < perCase {
				t.Errorf("%s miss flow counted %d, want >= %d\n%s", c.table, got, perCase, plDiagnose(t, a,
					fmt.Sprintf("in_port=%d,tun_src=%s,tun_dst=%s,tun_id=%d,icmp,dl_dst=%s,nw_dst=%s",
						plGREPort, c.src, rogue.dst, c.key, c.victim.ep.MAC, c.victim.ip())))
			}
		})
	}
	controls := []*plEP{blueV, redV}
	for _, v := range controls {
		rogue.send(t, hb, v.vni, v, 0x4e10+uint16(v.vni), 1)
	}
	plStopAll(caps...)
	for i, c := range cases {
		if got := capOf[c.victim].read(t, fmt.Sprintf("icmp[4:2] = 0x%x", 0x4e00+i)); len(got) != 0 {
			t.Errorf("%s: %s received it:\n%s", c.name, c.victim.name, strings.Join(got, "\n"))
		}
	}
	for _, v := range controls {
		if got := capOf[v].read(t, fmt.Sprintf("icmp[4:2] = 0x%x", 0x4e10+uint16(v.vni))); len(got) == 0 {
			t.Errorf("control GRE from the known host with VNI %d did not reach %s: the method proves nothing", v.vni, v.name)
		}
	}
}
