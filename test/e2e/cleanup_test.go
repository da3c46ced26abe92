package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestCleanup: `ofctl-agent cleanup` refuses while the agent answers;
// once it is stopped, it removes the agent's nftables table, its gateway
// ports and every flow of the bridge, and leaves endpoint ports and other
// tables alone. ovs-vsctl, ovs-ofctl and nft observe.
func TestCleanup(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "nft")
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testbed.NewNode(t, "ha")
	testbed.AddOutside(t, n)
	n.Exec(t, "nft", "add", "table", "ip", "someone-else")
	p := agStart(t, n, "ha", "192.0.2.1", file)
	ep := agContainer(t, n, "ca", "10.100.1.10/16")
	gw := gateway.PortName("blue")
	// The agent makes it; made here too (--may-exist) until it does.
	n.Vsctl(t, "--may-exist", "add-port", "br-int", gw, "--", "set", "interface", gw, "type=internal")
	testbed.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(n.Vsctl(t, "list-ports", "br-int"), gw) && ntHasTable(n) &&
			strings.Contains(n.Exec(t, "ip", "rule"), "to 10.100.0.0/16 lookup 28519")
	}, "no gateway port %s, its routing rule or no table %s", gw, netfilter.DefaultTable)

	cleanup := func(want int) string {
		t.Helper()
		out, err := exec.Command(testbed.AgentBinary(t), "cleanup", "--ovsdb", n.DBAddr(), "--ovs-rundir", n.Dir,
			"--netns-host", n.NS.Path(), "--agent-socket", testbed.AgentSocket(n)).CombinedOutput()
		if code := exitCodeOf(err); code != want {
			t.Fatalf("cleanup: exit %d, want %d: %v\n%s", code, want, err, out)
		}
		return string(out)
	}
	if out := cleanup(1); !strings.Contains(out, "stop it first") || !ntHasTable(n) {
		t.Fatalf("cleanup with the agent running: %s", out)
	}
	p.Stop(syscall.SIGTERM)
	if flows := n.Ofctl(t, "dump-flows", "br-int"); !strings.Contains(flows, "actions") {
		t.Fatalf("no flows before cleanup:\n%s", flows)
	}
	out := cleanup(0)
	t.Logf("%s", out)
	if ntHasTable(n) {
		t.Error("the agent's table is still there")
	}
	if tables := n.Exec(t, "nft", "list", "tables"); !strings.Contains(tables, "someone-else") {
		t.Errorf("another table was removed: %s", tables)
	}
	ports := n.Vsctl(t, "list-ports", "br-int")
	if strings.Contains(ports, gw) || !strings.Contains(ports, ep.HostIf) {
		t.Errorf("ports after cleanup: %q; want %s gone and the endpoint %s kept", ports, gw, ep.HostIf)
	}
	if flows := n.Ofctl(t, "dump-flows", "br-int"); strings.Contains(flows, "actions") {
		t.Errorf("flows left:\n%s", flows)
	}
	if rules := n.Exec(t, "ip", "rule"); strings.Contains(rules, "lookup 28519") {
		t.Errorf("the gateway's routing rule is left:\n%s", rules)
	}
	cleanup(0) // nothing left to remove: still fine
}

func ntHasTable(n *testbed.Node) bool {
	_, err := n.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable)
	return err == nil
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
