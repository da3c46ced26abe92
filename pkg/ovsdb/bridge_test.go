package ovsdb

import (
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestBridgeDrift(t *testing.T) {
	mac, _ := net.ParseMAC("02:aa:bb:cc:dd:ee")
	cfg := BridgeConfig{Name: "br-int", DatapathType: "netdev", HWAddr: mac}
	good := func() *bridgeRow {
		b := desiredBridge(cfg)
		b.OtherConfig["unrelated"] = "kept"
		return b
	}
	tests := []struct {
		name    string
		mod     func(*bridgeRow)
		columns []string
		other   map[string]string
	}{
		{"as configured", func(*bridgeRow) {}, nil, nil},
		{"hwaddr upper case is the same MAC", func(b *bridgeRow) { b.OtherConfig[keyHWAddr] = "02:AA:BB:CC:DD:EE" }, nil, nil},
		{"standalone", func(b *bridgeRow) { s := "standalone"; b.FailMode = &s }, []string{"fail_mode"}, nil},
		{"fail_mode cleared", func(b *bridgeRow) { b.FailMode = nil }, []string{"fail_mode"}, nil},
		{"protocols added", func(b *bridgeRow) { b.Protocols = []string{"OpenFlow10", "OpenFlow13"} }, []string{"protocols"}, nil},
		{"protocols cleared", func(b *bridgeRow) { b.Protocols = nil }, []string{"protocols"}, nil},
		{"datapath", func(b *bridgeRow) { b.DatapathType = "system" }, []string{"datapath_type"}, nil},
		{"hwaddr changed", func(b *bridgeRow) { b.OtherConfig[keyHWAddr] = "02:00:00:00:00:01" },
			nil, map[string]string{keyHWAddr: "02:aa:bb:cc:dd:ee"}},
		{"hwaddr garbage", func(b *bridgeRow) { b.OtherConfig[keyHWAddr] = "zz" },
			nil, map[string]string{keyHWAddr: "02:aa:bb:cc:dd:ee"}},
		{"other_config wiped", func(b *bridgeRow) { b.OtherConfig = nil },
			nil, map[string]string{keyHWAddr: "02:aa:bb:cc:dd:ee", keyInBand: "true"}},
		{"everything", func(b *bridgeRow) { *b = bridgeRow{Name: "br-int"} },
			[]string{"fail_mode", "protocols", "datapath_type"}, map[string]string{keyHWAddr: "02:aa:bb:cc:dd:ee", keyInBand: "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.mod(b)
			d := bridgeDrift(b, cfg)
			if !reflect.DeepEqual(d.columns, tc.columns) || !reflect.DeepEqual(d.otherConfig, tc.other) {
				t.Errorf("drift = %v %v, want %v %v", d.columns, d.otherConfig, tc.columns, tc.other)
			}
			if d.empty() != (tc.columns == nil && tc.other == nil) {
				t.Errorf("empty() = %v", d.empty())
			}
			if !d.empty() && d.String() == "" {
				t.Error("drift without a description")
			}
		})
	}
}

func TestDriftDescribesWhatWasFound(t *testing.T) {
	s := "standalone"
	d := bridgeDrift(&bridgeRow{FailMode: &s, Protocols: []string{"OpenFlow10"}, DatapathType: "netdev"},
		BridgeConfig{DatapathType: "netdev", HWAddr: DeriveHWAddr("n", "b")})
	for _, want := range []string{"fail_mode=standalone", "protocols=OpenFlow10", "other_config:hwaddr="} {
		if !strings.Contains(d.String(), want) {
			t.Errorf("%q lacks %q", d.String(), want)
		}
	}
}

func TestTunnelOptions(t *testing.T) {
	spec := TunnelSpec{Name: "gre0", OFPort: 9}
	if got := spec.options(); !reflect.DeepEqual(got, map[string]string{"remote_ip": "flow", "key": "flow"}) {
		t.Errorf("options %v", got)
	}
	p := spec.portSpec()
	if p.Type != "gre" || p.OFPortRequest != 9 || p.Name != "gre0" {
		t.Errorf("port spec %+v", p)
	}
	row := desiredIface(p, spec.options())
	if row.OFPortRequest == nil || *row.OFPortRequest != 9 || row.Options["key"] != "flow" {
		t.Errorf("row %+v", row)
	}
	if !ifaceMatches(row, desiredIface(p, spec.options())) {
		t.Error("row does not match itself")
	}
	other := desiredIface(PortSpec{Name: "gre0", Type: "gre", OFPortRequest: 8}, spec.options())
	if ifaceMatches(other, row) {
		t.Error("different ofport_request matches")
	}
	if desiredIface(PortSpec{Name: "v"}, nil).OFPortRequest != nil {
		t.Error("ofport_request 0 must leave the column empty")
	}
	// mtu_request: compared and written only when the spec sets it.
	gw := desiredIface(PortSpec{Name: "ofgw-blue", Type: "internal", MTURequest: 1458}, nil)
	if gw.MTURequest == nil || *gw.MTURequest != 1458 {
		t.Fatalf("mtu_request %v, want 1458", gw.MTURequest)
	}
	got := desiredIface(PortSpec{Name: "ofgw-blue", Type: "internal"}, nil)
	if ifaceMatches(got, gw) || !ifaceMatches(gw, got) {
		t.Error("an interface without the wanted mtu_request matches, or one with an mtu_request differs from a spec leaving it")
	}
}
