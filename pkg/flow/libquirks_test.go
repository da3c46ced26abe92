package flow_test

import (
	"encoding/binary"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// TestLibOpenflowQuirks pins down the libOpenflow behaviours encode.go works
// around, so a library upgrade that changes them is noticed.
func TestLibOpenflowQuirks(t *testing.T) {
	if out := openflow13.NewActionOutput(1); out.MaxLen != 256 {
		t.Errorf("NewActionOutput max_len %d: the max_len workaround may be unneeded", out.MaxLen)
	}
	if m := openflow13.NewNXRange(0, 0).ToUint32Mask(); m == 1 {
		t.Error("NXRange(0,0) now gives mask 0x1")
	}
	fm := openflow13.NewFlowMod()
	fm.Command = openflow13.FC_DELETE_STRICT
	apply := openflow13.NewInstrApplyActions()
	_ = apply.AddAction(openflow13.NewActionOutput(1), false)
	fm.AddInstruction(apply)
	b, _ := fm.MarshalBinary()
	if int(binary.BigEndian.Uint16(b[2:4])) == len(b) {
		t.Error("DELETE_STRICT with instructions now marshals consistently")
	}
	// Our deletes carry no instructions and have a consistent length.
	ours, err := flow.Flow{Priority: 1, Actions: []flow.Action{flow.Output{Port: 1}}}.FlowMod(openflow13.FC_DELETE_STRICT)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = ours.MarshalBinary()
	if int(binary.BigEndian.Uint16(b[2:4])) != len(b) {
		t.Error("our DELETE_STRICT has an inconsistent length")
	}
}

// TestOVSKeepsMaxLen shows why outputs are sent with max_len 0: OVS returns
// the max_len it was given, so libOpenflow's default 256 would make the
// content of our flows differ from what ovs-ofctl installs.
func TestOVSKeepsMaxLen(t *testing.T) {
	_, c := newBridge(t)
	fm := openflow13.NewFlowMod()
	fm.Priority = 9
	apply := openflow13.NewInstrApplyActions()
	_ = apply.AddAction(openflow13.NewActionOutput(3), false)
	fm.AddInstruction(apply)
	if _, err := c.SendMessage(fm); err != nil {
		t.Fatal(err)
	}
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
	stats, err := c.DumpFlows()
	if err != nil || len(stats) != 1 {
		t.Fatalf("%v %v", stats, err)
	}
	want := flow.Flow{Priority: 9, Actions: []flow.Action{flow.Output{Port: 3}}}
	if stats[0].Key() != want.Key() {
		t.Fatal("different flow")
	}
	if stats[0].Content() == want.Content() {
		t.Error("OVS normalised max_len: the workaround may be unneeded")
	}
	if _, err := stats[0].Flow(); err == nil {
		t.Error("a flow with max_len 256 decoded as if it were ours")
	}
}
