package arp

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

func TestDerivedMAC(t *testing.T) {
	tests := []struct {
		ip   string
		want string
	}{
		{"10.1.2.3", "0a:58:0a:01:02:03"},
		{"192.168.255.1", "0a:58:c0:a8:ff:01"},
		{"0.0.0.0", "0a:58:00:00:00:00"},
	}
	for _, tt := range tests {
		got := DerivedMAC(netip.MustParseAddr(tt.ip))
		if got.String() != tt.want {
			t.Errorf("%s: %s, want %s", tt.ip, got, tt.want)
		}
		if !IsDerived(got, netip.MustParseAddr(tt.ip)) {
			t.Errorf("%s: IsDerived false for its own derived MAC", tt.ip)
		}
		if got[0]&0x02 == 0 || got[0]&0x01 != 0 {
			t.Errorf("%s: %s is not locally administered unicast", tt.ip, got)
		}
	}
	if DerivedMAC(netip.MustParseAddr("::1")) != nil || IsDerived(net.HardwareAddr{1, 2, 3, 4, 5, 6}, netip.Addr{}) {
		t.Error("non-IPv4 address derived a MAC")
	}
	if IsDerived(net.HardwareAddr{0x0a, 0x58, 10, 1, 2, 4}, netip.MustParseAddr("10.1.2.3")) {
		t.Error("IsDerived true for another address")
	}
}

func TestDerivedRange(t *testing.T) {
	tests := []struct {
		prefix, mac, mask string
	}{
		{"10.1.2.0/24", "0a:58:0a:01:02:00", "ff:ff:ff:ff:ff:00"},
		{"10.1.3.128/25", "0a:58:0a:01:03:80", "ff:ff:ff:ff:ff:80"},
		{"10.1.3.77/20", "0a:58:0a:01:00:00", "ff:ff:ff:ff:f0:00"},
		{"10.1.2.3/32", "0a:58:0a:01:02:03", "ff:ff:ff:ff:ff:ff"},
		{"0.0.0.0/0", "0a:58:00:00:00:00", "ff:ff:00:00:00:00"},
	}
	for _, tt := range tests {
		mac, mask := DerivedRange(netip.MustParsePrefix(tt.prefix))
		if mac.String() != tt.mac || mask.String() != tt.mask {
			t.Errorf("%s: %s/%s, want %s/%s", tt.prefix, mac, mask, tt.mac, tt.mask)
		}
	}
	if mac, mask := DerivedRange(netip.MustParsePrefix("2001:db8::/64")); mac != nil || mask != nil {
		t.Error("IPv6 prefix gave a range")
	}
}

func TestResponderFlows(t *testing.T) {
	r := Responder{Table: 2, Network: flow.RegField{Reg: 0, Bits: 32}}
	addr := r.Address(100, netip.MustParseAddr("10.1.1.3"), net.HardwareAddr{2, 0, 0, 0, 1, 3}, 7)
	rng := r.Range(100, netip.MustParsePrefix("10.1.2.77/24"), 7)
	tests := []struct {
		f    flow.Flow
		want string
	}{
		{addr, "cookie=0x7, table=2, priority=200,arp,reg0=0x64,arp_tpa=10.1.1.3,arp_op=1 actions=" +
			"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:00:00:01:03->eth_src,set_field:2->arp_op," +
			"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:02:00:00:00:01:03->arp_sha," +
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.1.1.3->arp_spa,IN_PORT"},
		{rng, "cookie=0x7, table=2, priority=124,arp,reg0=0x64,arp_tpa=10.1.2.0/24,arp_op=1 actions=" +
			"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:58:00:00:00:00->eth_src," +
			"move:NXM_OF_ARP_TPA[]->NXM_OF_ETH_SRC[0..31],set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]," +
			"move:NXM_OF_ETH_SRC[]->NXM_NX_ARP_SHA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
			"move:NXM_OF_ETH_SRC[0..31]->NXM_OF_ARP_SPA[],IN_PORT"},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); err != nil {
			t.Error(err)
		}
		if got := tt.f.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	// A /32 range is more specific than a /24 but never beats an exact address.
	if p := r.Range(100, netip.MustParsePrefix("10.1.2.3/32"), 0).Priority; p <= rng.Priority || p >= addr.Priority {
		t.Errorf("priority of a /32 range: %d", p)
	}
	if bad := r.Address(100, netip.MustParseAddr("10.1.1.3"), net.HardwareAddr{1}, 0); bad.Validate() == nil ||
		!strings.Contains(bad.Validate().Error(), "6-byte MAC") {
		t.Errorf("bad MAC accepted: %v", bad.Validate())
	}
}
