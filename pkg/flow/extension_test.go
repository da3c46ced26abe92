package flow_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// This file declares fields and actions that no landed feature uses, with
// pkg/flow's exported API only, to show that a 128-bit field and connection
// tracking are one declaration each: IPv6 addresses with prefixes, ct_state
// flags, ct_mark, and the ct(commit,zone=,table=,nat(...),exec(...)) action.

var (
	ipv6Src = flow.DeclareField(flow.FieldSpec{Name: "ipv6_src", NXMName: "NXM_NX_IPV6_SRC",
		NXM: flow.MakeHeader(flow.ClassNXM1, 19, 16), OXM: flow.MakeHeader(flow.ClassBasic, 26, 16), Bytes: 16,
		Prereq: flow.EthTypeIPv6, Writable: true, Masks: flow.CIDRMask, Format: flow.AddrFormat, PrintOrder: 70, WireOrder: 32})
	ipv6Dst = flow.DeclareField(flow.FieldSpec{Name: "ipv6_dst", NXMName: "NXM_NX_IPV6_DST",
		NXM: flow.MakeHeader(flow.ClassNXM1, 20, 16), OXM: flow.MakeHeader(flow.ClassBasic, 27, 16), Bytes: 16,
		Prereq: flow.EthTypeIPv6, Writable: true, Masks: flow.CIDRMask, Format: flow.AddrFormat, PrintOrder: 71, WireOrder: 33})
	ctState = flow.DeclareField(flow.FieldSpec{Name: "ct_state", NXMName: "NXM_NX_CT_STATE",
		NXM: flow.MakeHeader(flow.ClassNXM1, 105, 4), Bytes: 4, Masks: flow.AnyMask,
		Format:     flow.FlagsFormat{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"},
		PrintOrder: 10, WireOrder: 70})
	ctMark = flow.DeclareField(flow.FieldSpec{Name: "ct_mark", NXMName: "NXM_NX_CT_MARK",
		NXM: flow.MakeHeader(flow.ClassNXM1, 107, 4), Bytes: 4, Writable: true, Masks: flow.AnyMask,
		Format: flow.HexFormat, PrintOrder: 12, WireOrder: 72})
)

// ct_state flags.
const (
	ctNew uint64 = 0x01
	ctEst uint64 = 0x02
	ctTrk uint64 = 0x20
)

// Nicira subtypes of the connection-tracking actions.
const (
	nxastCT  = 35
	nxastNAT = 36
)

// ct is the connection-tracking action (Nicira NXAST_CT). Table 0xff is
// none; a NAT, if any, is the first of the nested actions.
type ct struct {
	commit bool
	zone   uint16
	table  uint8
	nat    *nat
	exec   []flow.Action
}

func (a ct) String() string {
	var p []string
	if a.commit {
		p = append(p, "commit")
	}
	if a.table != 0xff {
		p = append(p, fmt.Sprintf("table=%d", a.table))
	}
	if a.zone != 0 {
		p = append(p, fmt.Sprintf("zone=%d", a.zone))
	}
	if a.nat != nil {
		p = append(p, a.nat.String())
	}
	if len(a.exec) > 0 {
		p = append(p, "exec("+flow.ActionsString(a.exec)+")")
	}
	return "ct(" + strings.Join(p, ",") + ")"
}

func (a ct) nested() []flow.Action {
	if a.nat != nil {
		return append([]flow.Action{*a.nat}, a.exec...)
	}
	return a.exec
}

func (a ct) AppendWire(b []byte) ([]byte, error) {
	start := len(b)
	b = flow.AppendNicira(b, 0, nxastCT) // length set below
	var flags uint16
	if a.commit {
		flags = 1
	}
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, 0) // zone_src: none, an immediate zone
	b = binary.BigEndian.AppendUint16(b, a.zone)
	b = append(b, a.table, 0, 0, 0, 0, 0) // recirc_table, pad, alg
	for _, n := range a.nested() {
		var err error
		if b, err = n.AppendWire(b); err != nil {
			return nil, err
		}
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b, nil
}

func (a ct) Check(m flow.Match) error {
	if t := m.EthType(); t != flow.EthTypeIPv4 && t != flow.EthTypeIPv6 {
		return errors.New("ct needs a match on ip or ipv6")
	}
	for _, n := range a.nested() {
		if err := n.Check(m); err != nil {
			return err
		}
	}
	return nil
}

func decodeCT(b []byte, v flow.Vocabulary) (flow.Action, error) {
	if len(b) < 24 || binary.BigEndian.Uint32(b[12:16]) != 0 || binary.BigEndian.Uint16(b[22:24]) != 0 {
		return nil, fmt.Errorf("%w: ct with a zone field or an alg", flow.ErrUnsupported)
	}
	a := ct{commit: binary.BigEndian.Uint16(b[10:12]) == 1, zone: binary.BigEndian.Uint16(b[16:18]), table: b[18]}
	nested, err := v.DecodeActions(b[24:])
	if err != nil {
		return nil, err
	}
	if len(nested) > 0 {
		if n, ok := nested[0].(nat); ok {
			a.nat, nested = &n, nested[1:]
		}
	}
	a.exec = nested
	return a, nil
}

// nat is ct's NAT (Nicira NXAST_NAT): source NAT to one IPv4 address.
type nat struct{ src netip.Addr }

func (a nat) String() string { return "nat(src=" + a.src.String() + ")" }

func (a nat) AppendWire(b []byte) ([]byte, error) {
	start := len(b)
	b = flow.AppendNicira(b, 24, nxastNAT)
	b = append(b, 0, 0)                     // pad
	b = binary.BigEndian.AppendUint16(b, 1) // flags: NX_NAT_F_SRC
	b = binary.BigEndian.AppendUint16(b, 1) // range_present: NX_NAT_RANGE_IPV4_MIN
	b = append(b, a.src.AsSlice()...)       // the address
	return flow.Pad8(b, start), nil
}

func (nat) Check(flow.Match) error { return nil }

func decodeNAT(b []byte, _ flow.Vocabulary) (flow.Action, error) {
	if len(b) != 24 || binary.BigEndian.Uint16(b[12:14]) != 1 || binary.BigEndian.Uint16(b[14:16]) != 1 {
		return nil, fmt.Errorf("%w: nat other than src=IPv4", flow.ErrUnsupported)
	}
	return nat{netip.AddrFrom4([4]byte(b[16:20]))}, nil
}

// extended is the standard vocabulary and this file's declarations.
var extended = flow.Standard().With([]flow.Field{ipv6Src, ipv6Dst, ctState, ctMark},
	flow.ActionKind{Name: "ct", Type: flow.ActionExperimenter, Experimenter: flow.NiciraExperimenter, Subtype: nxastCT, Decode: decodeCT},
	flow.ActionKind{Name: "nat", Type: flow.ActionExperimenter, Experimenter: flow.NiciraExperimenter, Subtype: nxastNAT, Decode: decodeNAT})

var (
	isIP   = flow.FieldEthType.Is(uint64(flow.EthTypeIPv4))
	isIPv6 = flow.FieldEthType.Is(uint64(flow.EthTypeIPv6))
)

// extensionCases are flows using the declarations above, with the text
// OVS 3.1 prints for them.
var extensionCases = []struct {
	f    flow.Flow
	text string
}{
	{flow.Flow{Priority: 10, Match: flow.NewMatch(isIP, ctState.Masked(0, ctTrk)),
		Actions: []flow.Action{ct{table: 3, zone: 5}}},
		"priority=10,ct_state=-trk,ip actions=ct(table=3,zone=5)"},
	{flow.Flow{Table: 3, Priority: 10, Match: flow.NewMatch(isIP, ctState.Masked(ctNew|ctTrk, ctNew|ctTrk)),
		Actions: []flow.Action{ct{commit: true, zone: 5, table: 0xff, nat: &nat{netip.MustParseAddr("10.0.0.1")},
			exec: []flow.Action{ctMark.Set(1)}}, flow.Output{Port: 1}}},
		"table=3, priority=10,ct_state=+new+trk,ip actions=ct(commit,zone=5,nat(src=10.0.0.1),exec(set_field:0x1->ct_mark)),output:1"},
	{flow.Flow{Table: 3, Priority: 11, Match: flow.NewMatch(isIP, ctState.Masked(ctEst|ctTrk, ctEst|ctTrk), ctMark.Masked(1, 1)),
		Actions: []flow.Action{flow.Output{Port: 1}}},
		"table=3, priority=11,ct_state=+est+trk,ct_mark=0x1/0x1,ip actions=output:1"},
	{flow.Flow{Table: 4, Priority: 5, Match: flow.NewMatch(isIPv6, ipv6Src.Prefix(netip.MustParsePrefix("2001:db8::/32")),
		ipv6Dst.Addr(netip.MustParseAddr("2001:db8:1::5"))),
		Actions: []flow.Action{ipv6Dst.SetAddr(netip.MustParseAddr("2001:db8::1")),
			flow.Move{Src: flow.Bits(ipv6Src, 0, 32), Dst: flow.Whole(flow.Reg(0))}, flow.GotoTable{Table: 5}}},
		"table=4, priority=5,ipv6,ipv6_src=2001:db8::/32,ipv6_dst=2001:db8:1::5 actions=set_field:2001:db8::1->ipv6_dst,move:NXM_NX_IPV6_SRC[0..31]->NXM_NX_REG0[],goto_table:5"},
	{flow.Flow{Table: 4, Priority: 6, Match: flow.NewMatch(isIPv6, ipv6Dst.Prefix(netip.MustParsePrefix("fe80::/10")))},
		"table=4, priority=6,ipv6,ipv6_dst=fe80::/10 actions=drop"},
}

func TestExtensionText(t *testing.T) {
	for _, c := range extensionCases {
		if err := c.f.Validate(); err != nil {
			t.Errorf("%s: %v", c.text, err)
		}
		if got := c.f.String(); got != c.text {
			t.Errorf("got  %s\nwant %s", got, c.text)
		}
	}
	bad := flow.Flow{Match: flow.NewMatch(ipv6Src.Prefix(netip.MustParsePrefix("10.0.0.0/8")))}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not an IPv6 prefix") {
		t.Errorf("IPv4 prefix in ipv6_src: %v", err)
	}
	if err := (flow.Flow{Match: flow.NewMatch(ipv6Src.Prefix(netip.MustParsePrefix("2001:db8::/32")))}).Validate(); err == nil {
		t.Error("ipv6_src without ipv6 accepted")
	}
}

// TestOVSExtensionRoundTrip installs the extension flows into a real OVS:
// ovs-ofctl prints each as String does, and the flow stats OVS returns have
// the same keys and contents and decode back with the extended vocabulary
// (and not with the standard one).
func TestOVSExtensionRoundTrip(t *testing.T) {
	n, c := newBridge(t)
	var flows []flow.Flow
	var want []string
	for _, ec := range extensionCases {
		flows = append(flows, ec.f)
		want = append(want, ec.text)
	}
	if err := c.Install(flows...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	diffSets(t, dumpLines(t, n), want)
	stats, err := c.DumpFlows()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range checkReadBack(t, stats, flows, extended) {
		if _, err := s.Flow(); !errors.Is(err, flow.ErrUnsupported) {
			t.Errorf("standard vocabulary decoded the flow of key %x: %v", s.Key().Match, err)
		}
	}
}
