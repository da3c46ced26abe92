package attach

import (
	"context"
	"fmt"
)

// TxOffload says what Attach does with TX checksum offload on the container
// end of the veth.
//
// On OVS's userspace datapath (datapath_type netdev) ovs-vswitchd reads
// frames from the host end with a raw socket and forwards them as they are:
// with offload on, the container's kernel leaves TCP and UDP checksums for
// the "device" to finish, nobody does, and the receiver drops the segments
// (TCP stalls while ping works). Turned off, the container's kernel computes
// them itself. The host end needs nothing: ovs-vswitchd sends complete frames
// into it.
type TxOffload string

// TxOffload values.
const (
	// TxOffloadAuto turns offload off when the bridge's datapath_type is
	// netdev and leaves it alone otherwise (the kernel datapath finishes
	// checksums itself). The default.
	TxOffloadAuto TxOffload = "auto"
	TxOffloadOn   TxOffload = "on"  // turn it on (the kernel's default for a veth)
	TxOffloadOff  TxOffload = "off" // turn it off
)

// DatapathNetdev is the datapath_type of OVS's userspace datapath.
const DatapathNetdev = "netdev"

// ParseTxOffload reads "auto", "on" or "off"; "" is auto.
func ParseTxOffload(s string) (TxOffload, error) {
	switch m := TxOffload(s); m {
	case "":
		return TxOffloadAuto, nil
	case TxOffloadAuto, TxOffloadOn, TxOffloadOff:
		return m, nil
	}
	return "", &OptionError{"tx-offload", s, "want auto, on or off"}
}

// txAction is what Attach does to the container end's TX checksum
// offload: set it to on, or leave it alone.
type txAction struct {
	set, on bool
}

// String is "on", "off" or "" (left alone), as Attachment.TxChecksum.
func (t txAction) String() string {
	if !t.set {
		return ""
	}
	return onOff(t.on)
}

// decideTxChecksum turns the mode and the bridge's datapath_type into what
// to do.
func decideTxChecksum(mode TxOffload, datapathType string) txAction {
	switch mode {
	case TxOffloadOn:
		return txAction{set: true, on: true}
	case TxOffloadOff:
		return txAction{set: true}
	}
	return txAction{set: datapathType == DatapathNetdev}
}

// resolveTx decides for mode; only auto asks OVS for the datapath type.
func (a *Attacher) resolveTx(ctx context.Context, mode TxOffload) (txAction, error) {
	if mode != TxOffloadAuto {
		return decideTxChecksum(mode, ""), nil
	}
	dp, err := a.Ports.DatapathType(ctx)
	if err != nil {
		return txAction{}, fmt.Errorf("datapath type of the bridge (for --tx-offload auto): %w", err)
	}
	return decideTxChecksum(mode, dp), nil
}

// ensureTxChecksum brings an existing attachment's container interface to
// tx (attachments made before Attach handled offload, or changed by hand).
func (a *Attacher) ensureTxChecksum(ns *NetNS, ifname, port string, tx txAction) error {
	if !tx.set {
		return nil
	}
	on, err := a.links().TxChecksum(ns, ifname)
	if err != nil {
		return fmt.Errorf("port %s: container interface: %w", port, err)
	}
	if on == tx.on {
		return nil
	}
	if err := a.links().SetTxChecksum(ns, ifname, tx.on); err != nil {
		return fmt.Errorf("port %s: container interface: %w", port, err)
	}
	a.log().Info("tx checksum offload changed on an attached interface", "port", port, "ifname", ifname, "tx_checksum", tx.String())
	return nil
}
