package netfilter

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// term is one match or statement of a rule: the kernel's expressions for
// it, and how `nft list` prints it. A rule is a list of terms, so that a
// test failure or the golden file reads as nft's own output.
type term interface {
	exprs() []expr.Any
	String() string
}

const reg = unix.NFT_REG_1 // every match loads into register 1

func cmpEq(data []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data} }

// ifMatch is `iifname "x"` or `oifname "x"`.
type ifMatch struct {
	out  bool
	name string
}

func iif(name string) term { return ifMatch{false, name} }
func oif(name string) term { return ifMatch{true, name} }

func (m ifMatch) exprs() []expr.Any {
	key := expr.MetaKeyIIFNAME
	if m.out {
		key = expr.MetaKeyOIFNAME
	}
	name := make([]byte, ifNameSize) // nft compares the whole NUL-padded name
	copy(name, m.name)
	return []expr.Any{&expr.Meta{Key: key, Register: reg}, cmpEq(name)}
}

func (m ifMatch) String() string {
	if m.out {
		return fmt.Sprintf("oifname %q", m.name)
	}
	return fmt.Sprintf("iifname %q", m.name)
}

// addrMatch is `ip saddr|daddr [!=] prefix`.
type addrMatch struct {
	dst bool
	p   netip.Prefix
	neq bool
}

func saddr(p netip.Prefix) term    { return addrMatch{false, p, false} }
func notSaddr(p netip.Prefix) term { return addrMatch{false, p, true} }
func daddr(p netip.Prefix) term    { return addrMatch{true, p, false} }
func notDaddr(p netip.Prefix) term { return addrMatch{true, p, true} }

func addrOffset(dst bool) uint32 {
	if dst {
		return 16
	}
	return 12
}

func (m addrMatch) exprs() []expr.Any {
	out := []expr.Any{&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: addrOffset(m.dst), Len: 4}}
	if m.p.Bits() < 32 {
		mask := intAddr(^uint32(0) << (32 - m.p.Bits())).As4()
		out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask[:], Xor: make([]byte, 4)})
	}
	op := expr.CmpOpEq
	if m.neq {
		op = expr.CmpOpNeq
	}
	a := m.p.Addr().As4()
	return append(out, &expr.Cmp{Op: op, Register: reg, Data: a[:]})
}

func (m addrMatch) String() string {
	field, op, a := "saddr", "", m.p.String()
	if m.dst {
		field = "daddr"
	}
	if m.neq {
		op = "!= "
	}
	if m.p.Bits() == 32 {
		a = m.p.Addr().String()
	}
	return "ip " + field + " " + op + a
}

// inSet is `ip daddr @set`.
type inSet struct{ set string }

func (m inSet) exprs() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: addrOffset(true), Len: 4},
		&expr.Lookup{SourceRegister: reg, SetName: m.set, SetID: setID},
	}
}

func (m inSet) String() string { return "ip daddr @" + m.set }

// ipsDstNAT is conntrack's IPS_DST_NAT status bit (linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// ctBits is `ct state ...` or `ct status ...`: some of the bits set.
type ctBits struct {
	key  expr.CtKey
	bits uint32
	text string
}

var (
	ctReplyOrRelated = ctBits{expr.CtKeySTATE, expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED, "ct state established,related"}
	ctDNAT           = ctBits{expr.CtKeySTATUS, ipsDstNAT, "ct status dnat"}
)

func (m ctBits) exprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg, Key: m.key},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, m.bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
	}
}

func (m ctBits) String() string { return m.text }

// fibLocal is `fib daddr type local`: addressed to one of the host's
// addresses.
type fibLocal struct{}

func (fibLocal) exprs() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg, ResultADDRTYPE: true, FlagDADDR: true},
		cmpEq(binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)),
	}
}

func (fibLocal) String() string { return "fib daddr type local" }

// portMatch is `tcp|udp sport|dport N`.
type portMatch struct {
	proto Proto
	dst   bool
	port  uint16
}

func (m portMatch) exprs() []expr.Any {
	num := byte(unix.IPPROTO_TCP)
	if m.proto == UDP {
		num = unix.IPPROTO_UDP
	}
	off := uint32(0)
	if m.dst {
		off = 2
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}, cmpEq([]byte{num}),
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
		cmpEq(binary.BigEndian.AppendUint16(nil, m.port)),
	}
}

func (m portMatch) String() string {
	dir := "sport"
	if m.dst {
		dir = "dport"
	}
	return fmt.Sprintf("%s %s %d", m.proto, dir, m.port)
}

// counter is the `counter` statement; the kernel's values are not part of
// the rule's identity (see sameExprs).
type counter struct{}

func (counter) exprs() []expr.Any { return []expr.Any{&expr.Counter{}} }
func (counter) String() string    { return "counter packets 0 bytes 0" }

// verdict is accept, drop, return or jump.
type verdict struct {
	kind  expr.VerdictKind
	chain string
}

var (
	accept = verdict{kind: expr.VerdictAccept}
	drop   = verdict{kind: expr.VerdictDrop}
	ret    = verdict{kind: expr.VerdictReturn}
)

func jump(chain string) term { return verdict{expr.VerdictJump, chain} }

func (v verdict) exprs() []expr.Any { return []expr.Any{&expr.Verdict{Kind: v.kind, Chain: v.chain}} }

func (v verdict) String() string {
	switch v.kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + v.chain
	}
	return fmt.Sprintf("verdict %d", v.kind)
}

// dnatTo is `dnat to ip:port`.
type dnatTo struct {
	ip   netip.Addr
	port uint16
}

func (d dnatTo) exprs() []expr.Any {
	a := d.ip.As4()
	return []expr.Any{
		&expr.Immediate{Register: unix.NFT_REG_1, Data: a[:]},
		&expr.Immediate{Register: unix.NFT_REG_2, Data: binary.BigEndian.AppendUint16(nil, d.port)},
		// The kernel reports the max registers equal to the min ones: set
		// them so that the rule reads back the same.
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: unix.NFT_REG_1, RegAddrMax: unix.NFT_REG_1,
			RegProtoMin: unix.NFT_REG_2, RegProtoMax: unix.NFT_REG_2, Specified: true},
	}
}

func (d dnatTo) String() string { return fmt.Sprintf("dnat to %s:%d", d.ip, d.port) }

// masquerade is the `masquerade` statement.
type masquerade struct{}

func (masquerade) exprs() []expr.Any { return []expr.Any{&expr.Masq{}} }
func (masquerade) String() string    { return "masquerade" }
