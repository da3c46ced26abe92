package debugapi

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// TraceParams are the query parameters of /debug/trace. arp, ip and icmp
// are flags (no value needed) choosing the packet; without one, arp_*
// parameters mean arp and nw_* parameters icmp.
var TraceParams = []string{"in_port", "dl_src", "dl_dst", "arp", "ip", "icmp", "arp_op", "arp_spa", "arp_tpa",
	"arp_sha", "arp_tha", "nw_src", "nw_dst", "tun_src", "tun_id", "format"}

// tracePacket is a parsed /debug/trace query.
type tracePacket struct {
	proto string // arp, ip or icmp
	pkt   Packet
}

// parseTraceQuery builds the packet. Defaults: from a local endpoint's
// port, dl_src, arp_sha and arp_spa/nw_src are the endpoint's; an ARP
// packet is a broadcast request; an IP packet's dl_dst is the MAC of the
// local endpoint with nw_dst, or else nw_dst's derived MAC.
func parseTraceQuery(q url.Values, e env) (tracePacket, error) {
	var tp tracePacket
	if err := checkParams(q, TraceParams); err != nil {
		return tp, err
	}
	proto, err := traceProto(q)
	if err != nil {
		return tp, err
	}
	tp.proto = proto
	p := &tp.pkt
	inPort := q.Get("in_port")
	if inPort == "" {
		return tp, badParam("in_port", "required: the packet's input port (number or interface name)")
	}
	n, err := e.port("in_port", inPort)
	if err != nil {
		return tp, err
	}
	p.Set(flow.FieldInPort, uint64(n))
	ep, local := e.endpointByPort(n)
	var src net.HardwareAddr
	var srcIP netip.Addr
	if local {
		src, srcIP = ep.MAC, ep.IP
	}
	ps := paramSetter{q: q, p: p}
	ps.mac("dl_src", flow.FieldEthSrc, src, true)
	ps.ipv4("tun_src", flow.FieldTunSrc, netip.Addr{}, false)
	ps.uint("tun_id", flow.FieldTunID, 0, 64)
	if proto == "arp" {
		ps.arp(srcIP)
	} else {
		ps.ip(srcIP, ep.Network, e)
	}
	return tp, ps.err
}

// arp fills an ARP packet: by default a broadcast request from srcIP.
func (ps *paramSetter) arp(srcIP netip.Addr) {
	ps.p.Set(flow.FieldEthType, uint64(flow.EthTypeARP))
	ps.mac("dl_dst", flow.FieldEthDst, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true)
	ps.uint("arp_op", flow.FieldArpOp, uint64(flow.ArpRequest), 16)
	ps.ipv4("arp_spa", flow.FieldArpSpa, srcIP, true)
	ps.ipv4("arp_tpa", flow.FieldArpTpa, netip.Addr{}, true)
	ps.mac("arp_sha", flow.FieldArpSha, u64MAC(ps.p.Get(flow.FieldEthSrc)), true)
	ps.mac("arp_tha", flow.FieldArpTha, make(net.HardwareAddr, 6), true)
}

// ip fills an IPv4 packet; dl_dst defaults to the MAC of the local
// endpoint with nw_dst, or else nw_dst's derived MAC (what the ARP
// responder answers for remote ranges); for an address outside the
// sender's network (its default route) the MAC of this host's gateway in
// that network, when it has one.
func (ps *paramSetter) ip(srcIP netip.Addr, network string, e env) {
	ps.p.Set(flow.FieldEthType, uint64(flow.EthTypeIPv4))
	ps.ipv4("nw_src", flow.FieldIPv4Src, srcIP, true)
	ps.ipv4("nw_dst", flow.FieldIPv4Dst, netip.Addr{}, true)
	if ps.err != nil {
		return
	}
	dst := u64Addr(ps.p.Get(flow.FieldIPv4Dst))
	mac := arp.DerivedMAC(dst)
	for _, d := range e.state.Endpoints {
		if d.IP == dst {
			mac = d.MAC
		}
	}
	for _, n := range e.state.Networks {
		if n.Name != network || n.Subnet.Contains(dst) {
			continue
		}
		for _, d := range e.state.Endpoints {
			if d.Gateway && d.Network == network {
				mac = d.MAC
			}
		}
	}
	ps.mac("dl_dst", flow.FieldEthDst, mac, true)
}

// traceProto decides the kind of packet.
func traceProto(q url.Values) (string, error) {
	var flags []string
	for _, f := range []string{"arp", "ip", "icmp"} {
		if v, ok := q[f]; ok {
			if v[0] != "" && v[0] != "1" && v[0] != "true" {
				return "", badParam(f, "a flag: give it without a value")
			}
			flags = append(flags, f)
		}
	}
	hasARP, hasIP := false, false
	for k := range q {
		hasARP = hasARP || strings.HasPrefix(k, "arp_")
		hasIP = hasIP || strings.HasPrefix(k, "nw_")
	}
	switch {
	case len(flags) > 1:
		return "", badParam(flags[1], "only one of arp, ip, icmp")
	case hasARP && hasIP:
		return "", badParam("arp_*", "an ARP packet has no nw_src/nw_dst (use arp_spa/arp_tpa)")
	case len(flags) == 1 && flags[0] == "arp" && hasIP, len(flags) == 1 && flags[0] != "arp" && hasARP:
		return "", badParam(flags[0], "arp_* parameters need arp, nw_* need ip or icmp")
	case len(flags) == 1:
		return flags[0], nil
	case hasARP:
		return "arp", nil
	case hasIP:
		return "icmp", nil
	}
	return "", badParam("arp", "say which packet: arp (with arp_tpa) or icmp/ip (with nw_dst)")
}

// paramSetter reads parameters into a packet, keeping the first error.
type paramSetter struct {
	q   url.Values
	p   *Packet
	err error
}

func (s *paramSetter) value(name string, required, haveDefault bool) (string, bool) {
	v, given := s.q[name]
	if s.err != nil {
		return "", false
	}
	if !given || v[0] == "" {
		if required && !haveDefault {
			s.err = badParam(name, "required here (no default: the input port is not a local endpoint)")
		}
		return "", false
	}
	return v[0], true
}

func (s *paramSetter) mac(name string, f flow.Field, def net.HardwareAddr, required bool) {
	if len(def) == 6 {
		s.p.Set(f, macU64(def))
	}
	v, ok := s.value(name, required, len(def) == 6)
	if !ok {
		return
	}
	mac, err := net.ParseMAC(v)
	if err != nil || len(mac) != 6 {
		s.err = badParam(name, "%q is not an Ethernet address (aa:bb:cc:dd:ee:ff)", v)
		return
	}
	s.p.Set(f, macU64(mac))
}

func (s *paramSetter) ipv4(name string, f flow.Field, def netip.Addr, required bool) {
	if def.Is4() {
		s.p.Set(f, addrU64(def))
	}
	v, ok := s.value(name, required, def.Is4())
	if !ok {
		return
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		s.err = badParam(name, "%q is not an IPv4 address", v)
		return
	}
	s.p.Set(f, addrU64(a))
}

func (s *paramSetter) uint(name string, f flow.Field, def uint64, bits int) {
	s.p.Set(f, def)
	v, ok := s.value(name, false, true)
	if !ok {
		return
	}
	n, err := strconv.ParseUint(v, 0, bits)
	if err != nil {
		s.err = badParam(name, "%q is not a %d-bit number", v, bits)
		return
	}
	s.p.Set(f, n)
}
