package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

const atCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
  - name: red
    vni: 200
    subnet: 10.200.0.0/16
hosts:
  - name: node-x
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, red: 10.200.3.0/24 }
`

// atCLI runs the real ofctl-agent binary against one test node.
type atCLI struct {
	bin, clusterFile string
	node             *testbed.Node
	noAgent          bool // no agent runs: attach does not wait for it
}

// atResult is the --json output of attach and detach.
type atResult struct {
	Action      string   `json:"action"`
	Port        string   `json:"port"`
	OFPort      int      `json:"ofport"`
	ContainerID string   `json:"container_id"`
	IfName      string   `json:"ifname"`
	IP          string   `json:"ip"`
	MAC         string   `json:"mac"`
	MTU         int      `json:"mtu"`
	Gateway     string   `json:"gateway"`
	Ports       []string `json:"ports"`
	TxChecksum  string   `json:"tx_checksum"`
	Installed   bool     `json:"installed"`
	Released    []string `json:"released"`
}

// TestAttachCLI drives `ofctl-agent attach/detach` as a user would and
// checks the outcome with ip and ovs-vsctl.
func TestAttachCLI(t *testing.T) {
	testbed.Require(t)
	c := &atCLI{bin: atBuild(t), node: testbed.NewNode(t, "x"), noAgent: true}
	c.node.AddBridge(t, "br-int")
	c.clusterFile = filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(c.clusterFile, []byte(atCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("AttachIdempotentDuplicateDetach", c.testAttach)
	t.Run("NoAgent", c.testNoAgent)
	t.Run("DetachAll", c.testDetachAll)
	t.Run("PID", c.testPID)
	t.Run("UnusablePortRolledBack", c.testUnusable)
	t.Run("HostNetNSRefused", c.testHostNetNS)
}

// testHostNetNS: attach refuses a namespace that is not a container's (its
// own, here a test namespace it runs in; the bridge's) unless forced.
func (c *atCLI) testHostNetNS(t *testing.T) {
	ns := atNewNS(t, "self")
	p := exec.Command("ip", "netns", "exec", ns, c.bin, "attach", "--ovsdb", c.node.DBAddr(), "--netns-host", c.node.NS.Path(),
		"--cluster-file", c.clusterFile, "--node-name", "node-x", "--network", "blue", "--ip", "10.100.1.40", "--wait", "0",
		"--agent-socket", testbed.AgentSocket(c.node), atNSPath(ns))
	out, err := p.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), atNSPath(ns)+" is this process's own network namespace") {
		t.Fatalf("attach into its own namespace: %v\n%s", err, out)
	}
	if links := atMustCmd(t, "ip", "-n", ns, "-o", "link"); strings.Count(links, "\n") != 1 {
		t.Fatalf("a refused attach left links in %s:\n%s", ns, links)
	}
	before := c.node.Exec(t, "ip", "-o", "link")
	_, errOut := c.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.1.41", c.node.NS.Path())
	if !strings.Contains(errOut, c.node.NS.Path()+" is the bridge's (--netns-host) network namespace") || !strings.Contains(errOut, "--force-host-netns") {
		t.Fatalf("attach into the bridge's namespace: %q", errOut)
	}
	if after := c.node.Exec(t, "ip", "-o", "link"); after != before {
		t.Fatalf("a refused attach changed the node's links:\n%s", after)
	}
	c.mustRun(t, "attach", "--network", "blue", "--ip", "10.100.1.41", "--force-host-netns", c.node.NS.Path())
	if got := c.node.Exec(t, "ip", "-o", "-4", "addr", "show", "dev", "eth1"); !strings.Contains(got, "inet 10.100.1.41/16 ") {
		t.Fatalf("forced attach: eth1 of the node: %q", got)
	}
	c.mustRun(t, "detach", c.node.NS.Path())
}

// testUnusable puts the host end where OVS cannot open it (the wrong
// --netns-host): OVS reports ofport -1 and attach must undo everything.
func (c *atCLI) testUnusable(t *testing.T) {
	ns, wrong := atNewNS(t, "c9"), atNewNS(t, "elsewhere")
	_, stderr := c.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.1.99", "--netns-host", atNSPath(wrong), atNSPath(ns))
	if !strings.Contains(stderr, "rolled back") {
		t.Fatalf("stderr %q", stderr)
	}
	if out := c.node.Vsctl(t, "--columns=name", "list", "interface"); strings.Contains(out, "_l") {
		t.Fatalf("an OVS port was left behind:\n%s", out)
	}
	for _, n := range []string{ns, wrong} {
		if out := atMustCmd(t, "ip", "-n", n, "-o", "link"); strings.Contains(out, "veth") || strings.Contains(out, "eth1") {
			t.Fatalf("a veth was left in %s:\n%s", n, out)
		}
	}
}

func (c *atCLI) testAttach(t *testing.T) {
	ns := atNewNS(t, "c1")
	args := []string{"--network", "blue", "--ip", "10.100.1.5", "--gateway", "10.100.1.1", "--mtu", "1400", atNSPath(ns)}
	out := c.mustRun(t, "attach", args...)
	if !strings.HasPrefix(out, "attached "+atNSPath(ns)+" eth1: port of") || !strings.Contains(out, "ip 10.100.1.5/16, mac 0a:58:0a:64:01:05, mtu 1400") {
		t.Errorf("attach said %q", out)
	}
	r := c.mustJSON(t, "attach", args...)
	if r.Action != "already-attached" || r.OFPort <= 0 || r.IP != "10.100.1.5/16" || r.ContainerID != atNSPath(ns) || r.TxChecksum != "off" {
		t.Fatalf("second attach: %+v", r)
	}
	c.checkAttached(t, ns, r.Port, "eth1", "10.100.1.5/16", "0a:58:0a:64:01:05", 1400)
	if got := atMustCmd(t, "ip", "-n", ns, "route", "show", "default"); !strings.Contains(got, "via 10.100.1.1 dev eth1") {
		t.Errorf("default route: %q", got)
	}

	before := c.snapshot(t, ns, r.Port)
	if out := c.mustRun(t, "attach", args...); !strings.HasPrefix(out, "already attached ") {
		t.Errorf("third attach said %q", out)
	}
	if after := c.snapshot(t, ns, r.Port); after != before {
		t.Errorf("attaching again changed state:\n%s\nto\n%s", before, after)
	}
	_, errOut := c.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.1.6", atNSPath(ns))
	if !strings.Contains(errOut, "already attached as port "+r.Port+" with ip 10.100.1.5, not 10.100.1.6") {
		t.Errorf("other settings: %q", errOut)
	}

	ns2 := atNewNS(t, "c2")
	links := c.node.Exec(t, "ip", "-o", "link")
	_, errOut = c.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.1.5", atNSPath(ns2))
	if want := "ofctl-agent attach: ip 10.100.1.5 is already used in network blue by port " + r.Port + "\n"; errOut != want {
		t.Errorf("duplicate ip: stderr %q, want %q", errOut, want)
	}
	if got := c.node.Exec(t, "ip", "-o", "link"); got != links {
		t.Errorf("refused attach changed the host's links:\n%s\nto\n%s", links, got)
	}
	if _, err := atCmd("ip", "-n", ns2, "link", "show", "eth1"); err == nil {
		t.Error("refused attach created eth1 in the second container")
	}
	_, errOut = c.run(t, 1, "attach", "--bridge", "br-none", "--network", "blue", "--ip", "10.100.1.8", atNSPath(ns2))
	if !strings.Contains(errOut, "bridge not found: br-none") {
		t.Errorf("missing bridge: %q", errOut)
	}
	_, errOut = c.run(t, 2, "attach", "--network", "blue", "--ip", "10.101.0.5/16", atNSPath(ns2))
	if !strings.Contains(errOut, "outside network blue (10.100.0.0/16)") {
		t.Errorf("outside subnet: %q", errOut)
	}

	if out := c.mustRun(t, "detach", atNSPath(ns)); out != "detached "+atNSPath(ns)+" eth1: port "+r.Port+"\n" {
		t.Errorf("detach said %q", out)
	}
	c.checkGone(t, ns, r.Port, "eth1")
	if _, errOut := c.run(t, 1, "detach", atNSPath(ns)); !strings.Contains(errOut, "not attached") {
		t.Errorf("second detach: %q", errOut)
	}
}

// testNoAgent: without a running agent attach needs --ip and --wait 0
// (the other subtests); otherwise it says what is wrong and makes nothing.
func (c *atCLI) testNoAgent(t *testing.T) {
	ns := atNewNS(t, "na")
	links := c.node.Exec(t, "ip", "-o", "link")
	for _, args := range [][]string{
		{"--network", "red", atNSPath(ns)},
		{"--network", "red", "--ip", "10.200.3.1", "--wait", "5s", atNSPath(ns)},
	} {
		p := exec.Command(c.bin, append([]string{"attach", "--ovsdb", c.node.DBAddr(), "--netns-host", c.node.NS.Path(),
			"--agent-socket", testbed.AgentSocket(c.node)}, args...)...)
		out, err := p.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "the agent is not reachable on "+testbed.AgentSocket(c.node)+": is the agent running?") ||
			!strings.Contains(string(out), "give --ip and --wait 0 to attach without it") {
			t.Fatalf("attach %v without an agent: %v\n%s", args, err, out)
		}
	}
	if got := c.node.Exec(t, "ip", "-o", "link"); got != links {
		t.Errorf("a refused attach changed the node's links:\n%s", got)
	}
	if _, err := atCmd("ip", "-n", ns, "link", "show", "eth1"); err == nil {
		t.Error("a refused attach made eth1")
	}
}

func (c *atCLI) testDetachAll(t *testing.T) {
	ns := atNewNS(t, "m")
	r1 := c.mustJSON(t, "attach", "--network", "blue", "--ip", "10.100.2.1", atNSPath(ns))
	r2 := c.mustJSON(t, "attach", "--network", "blue", "--ip", "10.100.2.2", "--ifname", "eth2", "--mac", "02:00:00:00:00:22", atNSPath(ns))
	c.checkAttached(t, ns, r2.Port, "eth2", "10.100.2.2/16", "02:00:00:00:00:22", 1450)
	r := c.mustJSON(t, "detach", "--all", atNSPath(ns))
	if r.Action != "detached" || len(r.Ports) != 2 {
		t.Fatalf("detach --all: %+v", r)
	}
	c.checkGone(t, ns, r1.Port, "eth1")
	c.checkGone(t, ns, r2.Port, "eth2")
	if out := c.mustRun(t, "detach", "--all", atNSPath(ns)); out != "nothing attached to "+atNSPath(ns)+"\n" {
		t.Errorf("second detach --all said %q", out)
	}
}

func (c *atCLI) testPID(t *testing.T) {
	ns := atNewNS(t, "p")
	cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	testbed.Eventually(t, 5*time.Second, func() bool {
		a, _ := os.Readlink("/proc/" + pid + "/ns/net")
		b, _ := os.Readlink("/proc/self/ns/net")
		return a != "" && a != b
	}, "process %s never entered namespace %s", pid, ns)
	r := c.mustJSON(t, "attach", "--network", "blue", "--ip", "10.100.3.7", "--pid", pid)
	if r.ContainerID != "/proc/"+pid+"/ns/net" {
		t.Errorf("container id %q", r.ContainerID)
	}
	c.checkAttached(t, ns, r.Port, "eth1", "10.100.3.7/16", "0a:58:0a:64:03:07", 1450)
	c.mustRun(t, "detach", "--pid", pid)
	c.checkGone(t, ns, r.Port, "eth1")
}

// checkAttached checks the container interface with ip and the port with
// ovs-vsctl.
func (c *atCLI) checkAttached(t *testing.T, ns, port, ifname, addr, mac string, mtu int) {
	t.Helper()
	link := atMustCmd(t, "ip", "-n", ns, "-o", "link", "show", ifname)
	for _, want := range []string{fmt.Sprintf("mtu %d ", mtu), "link/ether " + mac + " ", "state UP"} {
		if !strings.Contains(link, want) {
			t.Errorf("%s in %s lacks %q: %s", ifname, ns, want, link)
		}
	}
	if got := atMustCmd(t, "ip", "-n", ns, "-o", "-4", "addr", "show", "dev", ifname); !strings.Contains(got, "inet "+addr+" ") {
		t.Errorf("%s address: %q, want %s", ifname, got, addr)
	}
	if !strings.Contains(c.node.Vsctl(t, "list-ports", "br-int"), port+"\n") {
		t.Errorf("port %s not on br-int", port)
	}
	ip, _, _ := strings.Cut(addr, "/")
	for key, want := range map[string]string{"ofctl-agent.network": "", "ofctl-agent.ip": ip, "ofctl-agent.mac": mac,
		"ofctl-agent.owner": "attach", "container_iface": ifname} {
		got := atUnquote(c.node.Vsctl(t, "get", "interface", port, "external_ids:"+key))
		if got == "" || (want != "" && got != want) {
			t.Errorf("external_ids:%s = %q, want %q", key, got, want)
		}
	}
	ofport, _ := strconv.Atoi(strings.TrimSpace(c.node.Vsctl(t, "get", "interface", port, "ofport")))
	if ofport <= 0 {
		t.Errorf("ofport %d", ofport)
	}
	if got := c.node.Exec(t, "ip", "-o", "link", "show", port); !strings.Contains(got, "state UP") {
		t.Errorf("host end: %s", got)
	}
}

// checkGone checks that the port, its host veth and the container interface
// are gone.
func (c *atCLI) checkGone(t *testing.T, ns, port, ifname string) {
	t.Helper()
	if show := c.node.Vsctl(t, "show"); strings.Contains(show, port) {
		t.Errorf("port %s still in ovs-vsctl show:\n%s", port, show)
	}
	if _, err := atCmd("ip", "-n", string(c.node.NS), "link", "show", port); err == nil {
		t.Errorf("host veth %s still exists", port)
	}
	if _, err := atCmd("ip", "-n", ns, "link", "show", ifname); err == nil {
		t.Errorf("%s still exists in %s", ifname, ns)
	}
}

// snapshot is what attaching again must not change.
func (c *atCLI) snapshot(t *testing.T, ns, port string) string {
	return strings.Join([]string{
		c.node.Vsctl(t, "--columns=_uuid,ofport,external_ids", "list", "interface", port),
		c.node.Vsctl(t, "list-ports", "br-int"),
		atMustCmd(t, "ip", "-n", ns, "-o", "link"), testbed.StableAddrs(atMustCmd(t, "ip", "-n", ns, "-o", "addr")),
		atMustCmd(t, "ip", "-n", ns, "route"), c.node.Exec(t, "ip", "-o", "link"),
	}, "")
}

// run runs the binary with the node's OVSDB and namespace and checks the
// exit status.
func (c *atCLI) run(t *testing.T, wantCode int, cmd string, args ...string) (string, string) {
	t.Helper()
	full := append([]string{cmd, "--ovsdb", c.node.DBAddr(), "--netns-host", c.node.NS.Path(), "--timeout", "20s"}, args...)
	if cmd == "attach" && !atContains(args, "--cluster-file") {
		full = append(full, "--cluster-file", c.clusterFile)
	}
	if cmd == "attach" && !atContains(args, "--node-name") {
		full = append(full, "--node-name", "node-x")
	}
	if (cmd == "attach" || cmd == "detach") && !atContains(args, "--agent-socket") {
		full = append(full, "--agent-socket", testbed.AgentSocket(c.node)) // none serves it with noAgent
	}
	if cmd == "attach" && c.noAgent {
		full = append(full, "--wait", "0") // no agent to install the ports
	}
	p := exec.Command(c.bin, full...)
	var out, errb bytes.Buffer
	p.Stdout, p.Stderr = &out, &errb
	err := p.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != wantCode {
		t.Fatalf("ofctl-agent %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(full, " "), code, wantCode, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func (c *atCLI) mustRun(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	out, _ := c.run(t, 0, cmd, args...)
	return out
}

func (c *atCLI) mustJSON(t *testing.T, cmd string, args ...string) atResult {
	t.Helper()
	var r atResult
	if out := c.mustRun(t, cmd, append(args, "--json")...); json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("%s --json printed %q", cmd, out)
	}
	return r
}

// atBuild returns the ofctl-agent binary built for this test process.
func atBuild(t *testing.T) string { return testbed.AgentBinary(t) }

// atNewNS makes a container namespace named like the test bed's (so a crashed
// run's leftovers are collected) and deletes it at cleanup.
func atNewNS(t *testing.T, name string) string {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := fmt.Sprintf("%s%d-%s-%s", testbed.Prefix, os.Getpid(), hex.EncodeToString(b[:]), name)
	atMustCmd(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		_, _ = atCmd("ip", "netns", "delete", ns)
		os.RemoveAll(filepath.Join("/etc/netns", ns)) // attach's resolv.conf
	})
	atMustCmd(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

func atNSPath(ns string) string { return filepath.Join("/var/run/netns", ns) }

func atCmd(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func atMustCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := atCmd(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func atUnquote(s string) string {
	s = strings.TrimSpace(s)
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

func atContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestAttachWaitsForTheAgent: attach returns once the agent has installed
// the port's flows (they are in OVS when it exits), and fails, undoing
// everything, when the agent does not know the network, does not program
// the port's bridge, or is not running.
func TestAttachWaitsForTheAgent(t *testing.T) {
	b := newIPBed(t)
	node, p, c := b.node, b.agent, b.cli

	ns := atNewNS(t, "w1")
	start := time.Now()
	r := c.mustJSON(t, "attach", "--network", "blue", "--ip", "10.100.1.7", "--node-name", "ha", atNSPath(ns))
	took := time.Since(start)
	flows, err := node.FlowCount("br-int", ofTable(pipeline.SpoofGuard)+fmt.Sprintf(",in_port=%d", r.OFPort)) // read as attach exits
	if err != nil || flows == 0 || !r.Installed {
		t.Fatalf("attach returned (installed %v) with %d spoof_guard flows for ofport %d in OVS (%v)", r.Installed, flows, r.OFPort, err)
	}
	if got := atUnquote(node.Vsctl(t, "get", "interface", r.Port, "external_ids:ofctl-agent.installed")); got != "10.100.1.7" {
		t.Fatalf("external_ids:ofctl-agent.installed = %q", got)
	}
	t.Logf("attach, waiting for the agent, took %v", took)

	// The agent does not know network green: it says so before anything
	// is made. (A port it refuses once made: TestIPAMCollisionAfterRestart.)
	ns2 := atNewNS(t, "w2")
	_, errOut := c.run(t, 1, "attach", "--network", "green", "--ip", "10.50.0.5/16", atNSPath(ns2))
	if !strings.Contains(errOut, `network green: agent: unknown network "green": not in the cluster view`) {
		t.Fatalf("unknown network: stderr %q", errOut)
	}
	c.checkNoTrace(t, ns2)

	// A port on a bridge the agent does not program: attach waits for the
	// flows in vain and undoes everything.
	node.AddBridge(t, "br-other")
	ns3 := atNewNS(t, "w3")
	_, errOut = c.run(t, 1, "attach", "--bridge", "br-other", "--network", "blue", "--ip", "10.100.1.8", "--wait", "1s", atNSPath(ns3))
	if !strings.Contains(errOut, "the agent did not install its flows within 1s: is ofctl-agent running, on bridge br-other") || !strings.HasSuffix(errOut, "rolled back\n") {
		t.Fatalf("other bridge: stderr %q", errOut)
	}
	c.checkNoTrace(t, ns3)

	p.Stop(syscall.SIGTERM)
	ns4 := atNewNS(t, "w4")
	_, errOut = c.run(t, 1, "attach", "--network", "blue", "--ip", "10.100.1.9", "--wait", "1s", atNSPath(ns4))
	if !strings.Contains(errOut, "the agent is not reachable on "+testbed.AgentSocket(node)+": is the agent running?") {
		t.Fatalf("no agent: stderr %q", errOut)
	}
	c.checkNoTrace(t, ns4)
}

// checkNoTrace checks that a refused attach left nothing: no port with
// the container's keys, no eth1 in it.
func (c *atCLI) checkNoTrace(t *testing.T, ns string) {
	t.Helper()
	if out := c.node.Vsctl(t, "--columns=name", "find", "interface", "external_ids:container_id="+atNSPath(ns)); strings.TrimSpace(out) != "" {
		t.Fatalf("a port was left behind:\n%s", out)
	}
	if _, err := atCmd("ip", "-n", ns, "link", "show", "eth1"); err == nil {
		t.Fatalf("eth1 was left in %s", ns)
	}
}
