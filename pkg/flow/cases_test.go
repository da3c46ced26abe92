package flow

import (
	"net"
	"net/netip"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ip(s string) netip.Addr            { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix         { return netip.MustParsePrefix(s) }
func reg(i int, v, m uint32) FieldMatch { return Reg(i).Masked(uint64(v), uint64(m)) }

var (
	ipv4 = FieldEthType.Is(uint64(EthTypeIPv4))
	arp  = FieldEthType.Is(uint64(EthTypeARP))
)

var (
	regVNI  = RegField{Reg: 0, Ofs: 0, Bits: 32}
	regTun  = RegField{Reg: 1, Ofs: 0, Bits: 1}
	regDst  = RegField{Reg: 2, Ofs: 0, Bits: 32}
	regLow3 = RegField{Reg: 3, Ofs: 0, Bits: 3}
)

// cases are flows with the text OVS 3.1 prints for them (taken from
// `ovs-ofctl -O OpenFlow13 dump-flows --no-stats`, and checked again against
// the real switch by TestOVSRoundTrip). Together they use every match field
// and action this package supports.
var cases = []struct {
	name string
	f    Flow
	text string
}{
	{"goto", Flow{Priority: 200, Match: NewMatch(FieldInPort.Is(100)), Actions: []Action{GotoTable{3}}},
		"priority=200,in_port=100 actions=goto_table:3"},
	{"catch-all", Flow{Priority: 0, Actions: []Action{GotoTable{1}}},
		"priority=0 actions=goto_table:1"},
	{"ip guard", Flow{Table: 1, Priority: 100,
		Match:   NewMatch(ipv4, FieldInPort.Is(3), FieldEthSrc.MAC(mac("0a:58:0a:01:00:05")), FieldIPv4Src.Addr(ip("10.1.0.5"))),
		Actions: []Action{regVNI.Load(100), GotoTable{5}}},
		"table=1, priority=100,ip,in_port=3,dl_src=0a:58:0a:01:00:05,nw_src=10.1.0.5 actions=set_field:0x64->reg0,goto_table:5"},
	{"arp guard", Flow{Table: 1, Priority: 100,
		Match: NewMatch(arp, FieldInPort.Is(3), FieldEthSrc.MAC(mac("0a:58:0a:01:00:05")), FieldArpSpa.Addr(ip("10.1.0.5")),
			FieldArpSha.MAC(mac("0a:58:0a:01:00:05"))),
		Actions: []Action{regVNI.Load(100), GotoTable{2}}},
		"table=1, priority=100,arp,in_port=3,dl_src=0a:58:0a:01:00:05,arp_spa=10.1.0.5,arp_sha=0a:58:0a:01:00:05 actions=set_field:0x64->reg0,goto_table:2"},
	{"port drop", Flow{Table: 1, Priority: 10, Match: NewMatch(FieldInPort.Is(3))},
		"table=1, priority=10,in_port=3 actions=drop"},
	{"arp reply", Flow{Table: 2, Priority: 200,
		Match: NewMatch(arp, reg(0, 100, ^uint32(0)), FieldArpOp.Is(uint64(ArpRequest)), FieldArpTpa.Addr(ip("10.1.0.6"))),
		Actions: []Action{Move{Whole(FieldEthSrc), Whole(FieldEthDst)}, FieldEthSrc.SetMAC(mac("0a:58:0a:01:00:06")),
			FieldArpOp.Set(uint64(ArpReply)), Move{Whole(FieldArpSha), Whole(FieldArpTha)}, FieldArpSha.SetMAC(mac("0a:58:0a:01:00:06")),
			Move{Whole(FieldArpSpa), Whole(FieldArpTpa)}, FieldArpSpa.SetAddr(ip("10.1.0.6")), Output{PortInPort}}},
		"table=2, priority=200,arp,reg0=0x64,arp_tpa=10.1.0.6,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:58:0a:01:00:06->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:0a:58:0a:01:00:06->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.1.0.6->arp_spa,IN_PORT"},
	{"arp range", Flow{Table: 2, Priority: 124,
		Match: NewMatch(arp, reg(0, 100, ^uint32(0)), FieldArpOp.Is(uint64(ArpRequest)), FieldArpTpa.Prefix(pfx("10.1.1.0/24"))),
		Actions: []Action{Move{Whole(FieldEthSrc), Whole(FieldEthDst)}, FieldEthSrc.SetMAC(mac("0a:58:00:00:00:00")),
			Move{Whole(FieldArpTpa), Bits(FieldEthSrc, 0, 32)}, FieldArpOp.Set(uint64(ArpReply)), Move{Whole(FieldArpSha), Whole(FieldArpTha)},
			Move{Whole(FieldEthSrc), Whole(FieldArpSha)}, Move{Whole(FieldArpSpa), Whole(FieldArpTpa)},
			Move{Bits(FieldEthSrc, 0, 32), Whole(FieldArpSpa)}, Output{PortInPort}}},
		"table=2, priority=124,arp,reg0=0x64,arp_tpa=10.1.1.0/24,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:0a:58:00:00:00:00->eth_src,move:NXM_OF_ARP_TPA[]->NXM_OF_ETH_SRC[0..31],set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ETH_SRC[]->NXM_NX_ARP_SHA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],move:NXM_OF_ETH_SRC[0..31]->NXM_OF_ARP_SPA[],IN_PORT"},
	{"tun_src", Flow{Table: 3, Priority: 100, Match: NewMatch(FieldInPort.Is(100), FieldTunSrc.Addr(ip("192.0.2.2"))), Actions: []Action{GotoTable{4}}},
		"table=3, priority=100,tun_src=192.0.2.2,in_port=100 actions=goto_table:4"},
	{"tun_id", Flow{Table: 4, Priority: 100, Match: NewMatch(ipv4, FieldTunID.Is(0x64)),
		Actions: []Action{regVNI.Load(100), regTun.Load(1), GotoTable{5}}},
		"table=4, priority=100,ip,tun_id=0x64 actions=set_field:0x64->reg0,load:0x1->NXM_NX_REG1[0],goto_table:5"},
	{"tunnel sets", Flow{Table: 4, Priority: 99, Match: NewMatch(FieldTunID.Masked(0x66, 0xff), FieldTunDst.Prefix(pfx("192.0.0.0/16"))),
		Actions: []Action{FieldTunDst.SetAddr(ip("192.0.2.9")), FieldTunID.Set(0x66), regLow3.Load(5), Output{1}}},
		"table=4, priority=99,tun_id=0x66/0xff,tun_dst=192.0.0.0/16 actions=set_field:192.0.2.9->tun_dst,set_field:0x66->tun_id,load:0x5->NXM_NX_REG3[0..2],output:1"},
	{"arp fields", Flow{Table: 4, Priority: 98,
		Match: NewMatch(arp, FieldEthSrc.MACMasked(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00")),
			FieldArpSpa.Addr(ip("10.1.1.1")), FieldArpTpa.Prefix(pfx("10.0.0.0/8")), FieldArpOp.Is(uint64(ArpReply)),
			FieldArpSha.MAC(mac("00:00:00:00:00:01")), FieldArpTha.MAC(mac("00:00:00:00:00:02"))),
		Actions: []Action{FieldArpTpa.SetAddr(ip("10.0.0.1")), FieldArpTha.SetMAC(mac("00:00:00:00:00:03")), Output{1}}},
		"table=4, priority=98,arp,dl_src=01:00:00:00:00:00/01:00:00:00:00:00,arp_spa=10.1.1.1,arp_tpa=10.0.0.0/8,arp_op=2,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02 actions=set_field:10.0.0.1->arp_tpa,set_field:00:00:00:00:00:03->arp_tha,output:1"},
	{"ip fields", Flow{Table: 4, Priority: 98,
		Match: NewMatch(ipv4, reg(7, 5, 0xff), FieldIPv4Src.Addr(ip("10.1.1.1")), FieldIPv4Dst.Prefix(pfx("10.0.0.0/8")))},
		"table=4, priority=98,ip,reg7=0x5/0xff,nw_src=10.1.1.1,nw_dst=10.0.0.0/8 actions=drop"},
	{"cookie default prio", Flow{Table: 4, Priority: DefaultPriority, Cookie: 0x1234000100000005},
		"cookie=0x1234000100000005, table=4, actions=drop"},
	{"cookie in_port", Flow{Priority: DefaultPriority, Cookie: 5, Match: NewMatch(FieldInPort.Is(1)), Actions: []Action{Output{2}}},
		"cookie=0x5, in_port=1 actions=output:2"},
	{"broadcast", Flow{Table: 4, Priority: 97, Cookie: 0x1234000100000005, Match: NewMatch(FieldEthDst.MAC(mac("ff:ff:ff:ff:ff:ff"))),
		Actions: []Action{Output{PortInPort}}},
		"cookie=0x1234000100000005, table=4, priority=97,dl_dst=ff:ff:ff:ff:ff:ff actions=IN_PORT"},
	{"masks", Flow{Table: 4, Priority: 96,
		Match: NewMatch(arp, FieldTunSrc.Prefix(pfx("10.0.0.0/8")), FieldArpSpa.Prefix(pfx("10.1.0.0/16")),
			FieldEthDst.MACMasked(mac("0a:58:0a:01:01:00"), mac("ff:ff:ff:ff:ff:00")))},
		"table=4, priority=96,arp,tun_src=10.0.0.0/8,dl_dst=0a:58:0a:01:01:00/ff:ff:ff:ff:ff:00,arp_spa=10.1.0.0/16 actions=drop"},
	{"local output", Flow{Table: 5, Priority: 200, Match: NewMatch(reg(0, 100, ^uint32(0)), FieldEthDst.MAC(mac("0a:58:0a:01:00:05"))),
		Actions: []Action{Output{3}}},
		"table=5, priority=200,reg0=0x64,dl_dst=0a:58:0a:01:00:05 actions=output:3"},
	{"to tunnel", Flow{Table: 5, Priority: 124,
		Match:   NewMatch(FieldEthDst.MACMasked(mac("0a:58:0a:01:01:00"), mac("ff:ff:ff:ff:ff:00")), regVNI.Is(100), regTun.Is(0)),
		Actions: []Action{regDst.Load(0xc0000202), GotoTable{6}}},
		"table=5, priority=124,reg0=0x64,reg1=0/0x1,dl_dst=0a:58:0a:01:01:00/ff:ff:ff:ff:ff:00 actions=set_field:0xc0000202->reg2,goto_table:6"},
	{"rewrite dst", Flow{Table: 5, Priority: 190, Match: NewMatch(FieldEthDst.MAC(mac("0a:58:0a:01:00:07")), regVNI.Is(100), regTun.Is(1)),
		Actions: []Action{FieldEthDst.SetMAC(mac("aa:bb:cc:dd:ee:ff")), Output{4}}},
		"table=5, priority=190,reg0=0x64,reg1=0x1/0x1,dl_dst=0a:58:0a:01:00:07 actions=set_field:aa:bb:cc:dd:ee:ff->eth_dst,output:4"},
	{"egress", Flow{Table: 6, Priority: 0,
		Actions: []Action{Move{regDst.Subfield(), Whole(FieldTunDst)}, Move{regVNI.Subfield(), Bits(FieldTunID, 0, 32)}, Output{100}}},
		"table=6, priority=0 actions=move:NXM_NX_REG2[]->NXM_NX_TUN_IPV4_DST[],move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],output:100"},
	{"zeros", Flow{Table: 7, Priority: 5, Match: NewMatch(reg(0, 0, ^uint32(0)), FieldTunID.Is(0)),
		Actions: []Action{regVNI.Load(0), regTun.Load(0), FieldTunID.Set(0), FieldTunDst.SetAddr(ip("0.0.0.0")),
			FieldEthSrc.SetMAC(mac("00:00:00:00:00:00")), GotoTable{8}}},
		"table=7, priority=5,reg0=0,tun_id=0 actions=set_field:0->reg0,load:0->NXM_NX_REG1[0],set_field:0->tun_id,set_field:0.0.0.0->tun_dst,set_field:00:00:00:00:00:00->eth_src,goto_table:8"},
	{"max", Flow{Table: 9, Priority: 65535, Cookie: ^uint64(0), Match: NewMatch(ipv4), Actions: []Action{Output{65279}}},
		"cookie=0xffffffffffffffff, table=9, priority=65535,ip actions=output:65279"},
	{"ipv6 loads", Flow{Table: 9, Priority: 2, Match: NewMatch(FieldEthType.Is(uint64(EthTypeIPv6))),
		Actions: []Action{Load{Whole(Reg(7)), 0xffffffff}, Load{Bits(Reg(6), 4, 4), 0xf},
			Move{Bits(Reg(6), 0, 16), Bits(Reg(7), 16, 16)}}},
		"table=9, priority=2,ipv6 actions=load:0xffffffff->NXM_NX_REG7[],load:0xf->NXM_NX_REG6[4..7],move:NXM_NX_REG6[0..15]->NXM_NX_REG7[16..31]"},
	{"other type", Flow{Table: 9, Priority: 3, Match: NewMatch(FieldEthType.Is(0x1234), FieldTunID.Masked(5, 0xff), reg(5, 0xffffffff, ^uint32(0))),
		Actions: []Action{Output{65000}}},
		"table=9, priority=3,reg5=0xffffffff,tun_id=0x5/0xff,dl_type=0x1234 actions=output:65000"},
	{"local port", Flow{Table: 9, Priority: 4, Match: NewMatch(FieldInPort.Is(uint64(PortLocal))), Actions: []Action{Output{PortNormal}}},
		"table=9, priority=4,in_port=LOCAL actions=NORMAL"},
	{"reserved ports", Flow{Table: 250, Priority: 4, Actions: []Action{Output{PortLocal}, Output{PortFlood}, Output{PortAll}, Output{PortTable}}},
		"table=250, priority=4 actions=LOCAL,FLOOD,ALL,TABLE"},
	{"arp writes", Flow{Table: 10, Priority: 7, Match: NewMatch(arp, FieldEthSrc.MAC(mac("02:00:00:00:00:01"))),
		Actions: []Action{FieldArpOp.Set(1), FieldArpSpa.SetAddr(ip("1.2.3.4")), FieldArpSha.SetMAC(mac("02:00:00:00:00:09")),
			Move{Bits(FieldArpSpa, 8, 8), Bits(Reg(4), 24, 8)}, Move{Whole(FieldTunSrc), Whole(Reg(5))},
			Move{Whole(FieldEthType), Bits(Reg(6), 0, 16)}, Move{Whole(FieldArpOp), Bits(FieldTunID, 48, 16)}}},
		"table=10, priority=7,arp,dl_src=02:00:00:00:00:01 actions=set_field:1->arp_op,set_field:1.2.3.4->arp_spa,set_field:02:00:00:00:00:09->arp_sha,move:NXM_OF_ARP_SPA[8..15]->NXM_NX_REG4[24..31],move:NXM_NX_TUN_IPV4_SRC[]->NXM_NX_REG5[],move:NXM_OF_ETH_TYPE[]->NXM_NX_REG6[0..15],move:NXM_OF_ARP_OP[]->NXM_NX_TUN_ID[48..63]"},
	{"ip dst write", Flow{Table: 10, Priority: 8, Match: NewMatch(ipv4, FieldIPv4Dst.Prefix(pfx("10.9.0.0/16")), FieldTunSrc.Addr(ip("192.0.2.7"))),
		Actions: []Action{Move{Whole(FieldIPv4Src), Whole(FieldIPv4Dst)}, Move{Bits(FieldTunDst, 0, 16), Bits(FieldIPv4Src, 16, 16)}, Output{9}}},
		"table=10, priority=8,ip,tun_src=192.0.2.7,nw_dst=10.9.0.0/16 actions=move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],move:NXM_NX_TUN_IPV4_DST[0..15]->NXM_OF_IP_SRC[16..31],output:9"},
}
