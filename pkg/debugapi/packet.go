package debugapi

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// modelled are the fields the model evaluates. A flow matching or writing
// any other field cannot be evaluated (see Model).
var modelled = [...]flow.Field{flow.FieldInPort, flow.FieldEthSrc, flow.FieldEthDst, flow.FieldEthType,
	flow.FieldIPv4Src, flow.FieldIPv4Dst, flow.FieldArpOp, flow.FieldArpSpa, flow.FieldArpTpa, flow.FieldArpSha,
	flow.FieldArpTha, flow.FieldTunID, flow.FieldTunSrc, flow.FieldTunDst,
	flow.Reg(0), flow.Reg(1), flow.Reg(2), flow.Reg(3), flow.Reg(4), flow.Reg(5), flow.Reg(6), flow.Reg(7)}

// fieldIndex is f's place in Packet, if the model holds it.
func fieldIndex(f flow.Field) (int, bool) {
	for i, m := range modelled {
		if m == f {
			return i, true
		}
	}
	return 0, false
}

// Packet is the model's view of a packet in the pipeline: every modelled
// field, MACs and IPv4 addresses as big-endian integers (as flow.Value's U64
// holds them).
type Packet [len(modelled)]uint64

// Get returns field f (0 for a field the model does not hold).
func (p *Packet) Get(f flow.Field) uint64 {
	i, ok := fieldIndex(f)
	if !ok {
		return 0
	}
	return p[i]
}

// Set writes field f, truncated to its width (nothing for a field the
// model does not hold).
func (p *Packet) Set(f flow.Field, v uint64) {
	i, ok := fieldIndex(f)
	if !ok {
		return
	}
	if bits := f.Bits(); bits < 64 {
		v &= 1<<bits - 1
	}
	p[i] = v
}

// kind is how OVS prints a field in a flow ("Flow:", "Final flow:").
type kind uint8

const (
	kindDec kind = iota
	kindHex
	kindMAC
	kindIPv4
)

// traceField names a packet field as ofproto/trace prints it.
type traceField struct {
	field flow.Field
	name  string
	kind  kind
}

// traceFields are the fields compared between the model and OVS, in the
// order ofproto/trace prints them.
var traceFields = func() []traceField {
	fs := make([]traceField, 0, 8+13)
	for i := range 8 {
		fs = append(fs, traceField{flow.Reg(i), fmt.Sprintf("reg%d", i), kindHex})
	}
	return append(fs,
		traceField{flow.FieldTunID, "tun_id", kindHex},
		traceField{flow.FieldTunSrc, "tun_src", kindIPv4},
		traceField{flow.FieldTunDst, "tun_dst", kindIPv4},
		traceField{flow.FieldInPort, "in_port", kindDec},
		traceField{flow.FieldEthSrc, "dl_src", kindMAC},
		traceField{flow.FieldEthDst, "dl_dst", kindMAC},
		traceField{flow.FieldIPv4Src, "nw_src", kindIPv4},
		traceField{flow.FieldIPv4Dst, "nw_dst", kindIPv4},
		traceField{flow.FieldArpSpa, "arp_spa", kindIPv4},
		traceField{flow.FieldArpTpa, "arp_tpa", kindIPv4},
		traceField{flow.FieldArpOp, "arp_op", kindDec},
		traceField{flow.FieldArpSha, "arp_sha", kindMAC},
		traceField{flow.FieldArpTha, "arp_tha", kindMAC},
	)
}()

// format prints v the way OVS prints the field.
func (k kind) format(v uint64) string {
	switch k {
	case kindHex:
		if v == 0 {
			return "0"
		}
		return fmt.Sprintf("%#x", v)
	case kindMAC:
		return u64MAC(v).String()
	case kindIPv4:
		return u64Addr(v).String()
	}
	return fmt.Sprint(v)
}

func macU64(m net.HardwareAddr) uint64 {
	var b [8]byte
	copy(b[2:], m)
	return binary.BigEndian.Uint64(b[:])
}

func u64MAC(v uint64) net.HardwareAddr {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return net.HardwareAddr(b[2:])
}

func addrU64(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(binary.BigEndian.Uint32(b[:]))
}

func u64Addr(v uint64) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b)
}

// OVSFlow is the packet in ovs-ofctl flow syntax, for ofproto/trace:
// "arp,in_port=1,dl_src=...,arp_op=1,...". Only the packet's own headers
// and tunnel metadata are given; registers start at zero.
func (p *Packet) OVSFlow(proto string) string {
	parts := []string{proto}
	add := func(name string, f flow.Field, k kind) {
		parts = append(parts, name+"="+k.format(p.Get(f)))
	}
	if p.Get(flow.FieldTunSrc) != 0 || p.Get(flow.FieldTunID) != 0 {
		add("tun_src", flow.FieldTunSrc, kindIPv4)
		add("tun_id", flow.FieldTunID, kindHex)
	}
	add("in_port", flow.FieldInPort, kindDec)
	add("dl_src", flow.FieldEthSrc, kindMAC)
	add("dl_dst", flow.FieldEthDst, kindMAC)
	if proto == "arp" {
		for _, n := range []struct {
			name string
			f    flow.Field
			k    kind
		}{{"arp_spa", flow.FieldArpSpa, kindIPv4}, {"arp_tpa", flow.FieldArpTpa, kindIPv4},
			{"arp_op", flow.FieldArpOp, kindDec}, {"arp_sha", flow.FieldArpSha, kindMAC}, {"arp_tha", flow.FieldArpTha, kindMAC}} {
			add(n.name, n.f, n.k)
		}
	} else {
		add("nw_src", flow.FieldIPv4Src, kindIPv4)
		add("nw_dst", flow.FieldIPv4Dst, kindIPv4)
		parts = append(parts, "nw_ttl=64")
		if proto == "icmp" {
			parts = append(parts, "icmp_type=8", "icmp_code=0")
		}
	}
	return strings.Join(parts, ",")
}

// changed lists the compared fields whose value differs between p and
// before, as "name=value" in OVS notation.
func (p *Packet) changed(before *Packet) map[string]string {
	out := map[string]string{}
	for _, tf := range traceFields {
		if v := p.Get(tf.field); v != before.Get(tf.field) {
			out[tf.name] = tf.kind.format(v)
		}
	}
	return out
}
