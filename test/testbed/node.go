package testbed

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const schemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// Node is one "host": a network namespace running its own ovsdb-server and
// userspace ovs-vswitchd, with every file under Dir.
type Node struct {
	Name string
	NS   NetNS
	Dir  string // run directory: db, sockets, pidfiles, logs, <bridge>.mgmt
	t    testing.TB
}

// NewNode starts a node. Its processes and namespace go away in t.Cleanup; the
// OVS logs are printed when the test failed.
func NewNode(t testing.TB, name string) *Node {
	t.Helper()
	Require(t)
	n := &Node{Name: name, t: t}
	dir, err := os.MkdirTemp("", uniqueName(name)+"-")
	if err != nil {
		t.Fatal(err)
	}
	n.Dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n.NS = newNetNS(t, name)
	mustRun(t, nil, "ovsdb-tool", "create", n.path("conf.db"), schemaPath)
	n.StartOVSDB(t)
	n.Vsctl(t, "--no-wait", "init")
	n.StartVswitchd(t)
	t.Cleanup(func() {
		n.stop("vswitchd")
		n.stop("ovsdb")
		if t.Failed() {
			n.dumpLogs()
		}
	})
	return n
}

func (n *Node) path(f string) string { return filepath.Join(n.Dir, f) }

// DBAddr is the OVSDB endpoint, e.g. "unix:/tmp/ofat-.../db.sock".
func (n *Node) DBAddr() string { return "unix:" + n.path("db.sock") }

// MgmtAddr is the bridge's OpenFlow service socket, e.g. "unix:/tmp/.../br-int.mgmt".
func (n *Node) MgmtAddr(bridge string) string { return "unix:" + n.path(bridge+".mgmt") }

// VswitchdCtl is the unixctl socket of ovs-vswitchd (for ovs-appctl -t).
func (n *Node) VswitchdCtl() string { return n.path("vswitchd.ctl") }

// VswitchdPid is the pid of the running ovs-vswitchd, 0 if none.
func (n *Node) VswitchdPid() int { return readPid(n.path("vswitchd.pid")) }

// StartOVSDB starts ovsdb-server inside the node's namespace.
func (n *Node) StartOVSDB(t testing.TB) {
	t.Helper()
	n.NS.MustExec(t, "ovsdb-server", "--remote=punix:"+n.path("db.sock"),
		"--pidfile="+n.path("ovsdb.pid"), "--unixctl="+n.path("ovsdb.ctl"),
		"--log-file="+n.path("ovsdb.log"), "--detach", "--no-chdir", n.path("conf.db"))
	n.waitSocket(t, "db.sock")
}

// StartVswitchd starts ovs-vswitchd (userspace datapath) inside the namespace.
func (n *Node) StartVswitchd(t testing.TB) {
	t.Helper()
	mustRun(t, []string{"OVS_RUNDIR=" + n.Dir}, "ip", "netns", "exec", string(n.NS),
		"ovs-vswitchd", "unix:"+n.path("db.sock"), "--pidfile="+n.path("vswitchd.pid"),
		"--unixctl="+n.path("vswitchd.ctl"), "--log-file="+n.path("vswitchd.log"),
		"--disable-system", "--enable-dummy", "--detach", "--no-chdir")
	n.waitSocket(t, "vswitchd.ctl")
}

// KillVswitchd sends SIGKILL to ovs-vswitchd and waits until it is gone.
func (n *Node) KillVswitchd(t testing.TB) { t.Helper(); n.kill(t, "vswitchd") }

// KillOVSDB sends SIGKILL to ovsdb-server and waits until it is gone.
func (n *Node) KillOVSDB(t testing.TB) { t.Helper(); n.kill(t, "ovsdb") }

func (n *Node) kill(t testing.TB, which string) {
	t.Helper()
	pid := readPid(n.path(which + ".pid"))
	if pid == 0 || !alive(pid) {
		t.Fatalf("%s of node %s is not running", which, n.Name)
	}
	killPid(pid, 0)
	// A killed daemon leaves its sockets and pidfile behind.
	for _, f := range []string{which + ".pid", which + ".ctl"} {
		_ = os.Remove(n.path(f))
	}
	if which == "ovsdb" {
		_ = os.Remove(n.path("db.sock"))
	}
}

func (n *Node) stop(which string) {
	if pid := readPid(n.path(which + ".pid")); pid > 0 && isOVS(pid) {
		killPid(pid, 3*time.Second)
	}
}

func (n *Node) waitSocket(t testing.TB, f string) {
	t.Helper()
	Eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(n.path(f))
		return err == nil
	}, "node %s: %s did not appear", n.Name, f)
}

// Vsctl runs ovs-vsctl against the node's database.
func (n *Node) Vsctl(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, nil, "ovs-vsctl", append([]string{"--timeout=10", "--db=" + n.DBAddr()}, args...)...)
}

// Ofctl runs "ovs-ofctl -O OpenFlow13 ARGS"; bridge names resolve to the
// node's <bridge>.mgmt sockets.
func (n *Node) Ofctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.OfctlErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FlowCount is how many flows bridge holds (those matching match, e.g.
// "table=3", if given), per ovs-ofctl dump-aggregate. It fails while
// ovs-ofctl cannot answer (ovs-vswitchd restarting).
func (n *Node) FlowCount(bridge string, match ...string) (int, error) {
	out, err := n.OfctlErr(append([]string{"dump-aggregate", bridge}, match...)...)
	if err != nil {
		return 0, err
	}
	i := strings.Index(out, "flow_count=")
	if i < 0 {
		return 0, fmt.Errorf("no flow_count in ovs-ofctl dump-aggregate: %q", out)
	}
	var c int
	if _, err := fmt.Sscanf(out[i:], "flow_count=%d", &c); err != nil {
		return 0, fmt.Errorf("ovs-ofctl dump-aggregate %q: %w", out, err)
	}
	return c, nil
}

// OfctlErr is Ofctl returning the error instead of failing the test.
func (n *Node) OfctlErr(args ...string) (string, error) {
	return run([]string{"OVS_RUNDIR=" + n.Dir}, "ovs-ofctl", append([]string{"-O", "OpenFlow13"}, args...)...)
}

// Appctl runs ovs-appctl against the node's ovs-vswitchd.
func (n *Node) Appctl(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, nil, "ovs-appctl", append([]string{"-t", n.VswitchdCtl()}, args...)...)
}

// Exec runs a command in the node's namespace.
func (n *Node) Exec(t testing.TB, args ...string) string {
	t.Helper()
	return n.NS.MustExec(t, args...)
}

// AddBridge creates a userspace bridge the way the agent configures br-int:
// fail_mode=secure, OpenFlow13 only, a fixed hwaddr. It waits for the
// bridge's .mgmt socket.
func (n *Node) AddBridge(t testing.TB, name string) {
	t.Helper()
	n.Vsctl(t, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
		"fail_mode=secure", "protocols=OpenFlow13", "other_config:hwaddr="+n.hwaddr(name).String())
	n.waitSocket(t, name+".mgmt")
}

// hwaddr derives a stable locally administered MAC for a bridge.
func (n *Node) hwaddr(bridge string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(string(n.NS) + "/" + bridge))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

func (n *Node) dumpLogs() {
	for _, f := range []string{"ovsdb.log", "vswitchd.log"} {
		b, err := os.ReadFile(n.path(f))
		if err != nil {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		n.t.Logf("node %s %s (tail):\n%s", n.Name, f, b)
	}
}

// String names the node in test output.
func (n *Node) String() string { return fmt.Sprintf("node %s (%s)", n.Name, n.NS) }
