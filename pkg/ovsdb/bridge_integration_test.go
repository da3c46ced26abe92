package ovsdb

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestEnsureBridge: the bridge comes out of one transaction as configured,
// vswitchd builds it (mgmt socket, datapath ID from hwaddr, no flows since
// fail_mode is secure from the start), and a second call changes nothing.
func TestEnsureBridge(t *testing.T) {
	n := testbed.NewNode(t, "ensbr")
	c, _ := startClient(t, n, nil)
	rec := record(c.Subscribe())
	if err := c.EnsureBridge(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	mac := c.Config().Bridge.HWAddr
	checks := map[string]string{
		"fail_mode":                    "secure",
		"protocols":                    "[OpenFlow13]",
		"datapath_type":                "netdev",
		"other_config:hwaddr":          mac.String(),
		"other_config:disable-in-band": "true",
	}
	for col, want := range checks {
		if got := vsctlGet(t, n, "Bridge", "br-int", col); got != want {
			t.Errorf("%s = %q, want %q", col, got, want)
		}
	}
	if got := n.Vsctl(t, "list-br"); strings.TrimSpace(got) != "br-int" {
		t.Errorf("list-br (Open_vSwitch.bridges) = %q", got)
	}
	testbed.Eventually(t, 10*time.Second, func() bool {
		return fileExists(filepath.Join(n.Dir, "br-int.mgmt"))
	}, "vswitchd made no br-int.mgmt")
	show := n.Ofctl(t, "show", "br-int")
	if dpid := "dpid:0000" + strings.ReplaceAll(mac.String(), ":", ""); !strings.Contains(show, dpid) {
		t.Errorf("ovs-ofctl show lacks %s (datapath ID from hwaddr):\n%s", dpid, show)
	}
	if flows := n.Ofctl(t, "dump-flows", "br-int"); strings.Contains(flows, "actions=") {
		t.Errorf("a secure bridge has flows nobody installed:\n%s", flows)
	}
	// The bridge's local interface is on the stream like any other.
	ev, _ := rec.wait(t, 0, "br-int with ofport", func(ev InterfaceEvent) bool {
		return ev.Interface.Name == "br-int" && ev.Interface.OFPort == 65534
	})
	if ev.Interface.Type != "internal" {
		t.Errorf("local interface %+v", ev.Interface)
	}

	if err := c.EnsureBridge(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("second EnsureBridge: %v", err)
	}
	rec.settle(t, n)
	if s := c.Stats(); s.Repairs != 0 || !s.Connected || s.Connects != 1 {
		t.Errorf("stats after clean runs: %+v", s)
	}
}

// TestBridgeRepair changes the bridge behind the client's back and measures
// how long it takes to come back.
func TestBridgeRepair(t *testing.T) {
	n := testbed.NewNode(t, "repair")
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	c, _ := startClient(t, n, func(cfg *Config) { cfg.Bridge.HWAddr = mac })
	if err := c.EnsureBridge(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change []string
		col    string
		want   string
	}{
		{"set-fail-mode standalone", []string{"set-fail-mode", "br-int", "standalone"}, "fail_mode", "secure"},
		{"del-fail-mode", []string{"del-fail-mode", "br-int"}, "fail_mode", "secure"},
		{"protocols", []string{"set", "bridge", "br-int", "protocols=OpenFlow10,OpenFlow13"}, "protocols", "[OpenFlow13]"},
		{"hwaddr", []string{"set", "bridge", "br-int", "other_config:hwaddr=02:00:00:00:00:99"}, "other_config:hwaddr", mac.String()},
		{"other_config cleared", []string{"clear", "bridge", "br-int", "other_config"}, "other_config:hwaddr", mac.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Stats().Repairs
			n.Vsctl(t, tc.change...)
			took := testbed.Eventually(t, 5*time.Second, func() bool {
				out, err := n.NS.Exec("ovs-vsctl", "--db="+n.DBAddr(), "--if-exists", "get", "Bridge", "br-int", tc.col)
				return err == nil && strings.Trim(strings.TrimSpace(out), `"`) == tc.want
			}, "%s not put back to %s", tc.col, tc.want)
			t.Logf("%s: put back within %v", tc.name, took)
			if c.Stats().Repairs <= before {
				t.Errorf("repair not counted: %+v", c.Stats())
			}
		})
	}
	// A deleted bridge is recreated, with its settings.
	n.Vsctl(t, "del-br", "br-int")
	testbed.Eventually(t, 5*time.Second, func() bool {
		_, err := n.NS.Exec("ovs-vsctl", "--db="+n.DBAddr(), "br-exists", "br-int")
		return err == nil
	}, "deleted bridge not recreated")
	if got := vsctlGet(t, n, "Bridge", "br-int", "fail_mode"); got != "secure" {
		t.Errorf("recreated bridge fail_mode %q", got)
	}
	if s := c.Stats(); s.RepairFailures != 0 {
		t.Errorf("repairs failed: %+v", s)
	}
}

// TestFlowRestoreWait sets and clears other_config:flow-restore-wait.
func TestFlowRestoreWait(t *testing.T) {
	n := testbed.NewNode(t, "frw")
	c, _ := startClient(t, n, nil)
	ctx := ctxT(t, 20*time.Second)
	for _, on := range []bool{true, true, false, false} {
		if err := c.SetFlowRestoreWait(ctx, on); err != nil {
			t.Fatal(err)
		}
		out := n.Vsctl(t, "get", "Open_vSwitch", ".", "other_config")
		if has := strings.Contains(out, `flow-restore-wait="true"`); has != on {
			t.Errorf("on=%v: other_config %s", on, out)
		}
		testbed.Eventually(t, 5*time.Second, func() bool {
			got, err := c.FlowRestoreWait(ctx)
			return err == nil && got == on
		}, "FlowRestoreWait did not report %v", on)
	}
}

// TestBridgeTableNames: the configured table names reach OVS through the
// bridge's flow_tables, so that `ovs-ofctl --names` prints them, and come
// back after the column is cleared or a name changed behind the client's
// back.
func TestBridgeTableNames(t *testing.T) {
	n := testbed.NewNode(t, "tnames")
	names := map[int]string{0: "classifier", 5: "l2_forward"}
	c, _ := startClient(t, n, func(cfg *Config) { cfg.Bridge.TableNames = names })
	if err := c.EnsureBridge(ctxT(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 10*time.Second, func() bool {
		return fileExists(filepath.Join(n.Dir, "br-int.mgmt"))
	}, "vswitchd made no br-int.mgmt")
	n.Ofctl(t, "add-flow", "br-int", "table=0,priority=1,actions=goto_table:5")
	n.Ofctl(t, "add-flow", "br-int", "table=l2_forward,priority=2,actions=drop") // ovs-ofctl resolves the name
	named := func() bool {
		out := n.Ofctl(t, "dump-flows", "--names", "--no-stats", "br-int")
		return strings.Contains(out, "table=classifier, priority=1 actions=goto_table:\"l2_forward\"") &&
			strings.Contains(out, "table=\"l2_forward\", priority=2 actions=drop")
	}
	testbed.Eventually(t, 5*time.Second, named, "tables not named:\n"+n.Ofctl(t, "dump-flows", "--names", "--no-stats", "br-int"))
	if out := n.Ofctl(t, "dump-flows", "--no-stats", "br-int"); !strings.Contains(out, "table=5, priority=2") {
		t.Errorf("--no-names (the default off a terminal) no longer prints numbers:\n%s", out)
	}
	n.Vsctl(t, "clear", "Bridge", "br-int", "flow_tables")
	testbed.Eventually(t, 5*time.Second, func() bool { return vsctlGet(t, n, "Bridge", "br-int", "flow_tables") != "{}" && named() },
		"flow_tables not put back")
	uuid := vsctlGet(t, n, "Bridge", "br-int", "flow_tables:5")
	n.Vsctl(t, "set", "Flow_Table", uuid, "name=other")
	testbed.Eventually(t, 5*time.Second, named, "renamed table not put back")
	if s := c.Stats(); s.Repairs < 2 {
		t.Errorf("stats: %+v, want 2 repairs", s)
	}
}
