package e2e

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// cniBin builds ofctl-cni and cnitool (from the reference library's
// module) into one directory with the reference plugins (host-local,
// bridge) of Debian's containernetworking-plugins: the runtime's CNI_PATH.
func cniBin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for pkg, name := range map[string]string{"../../cmd/ofctl-cni": "ofctl-cni", "github.com/containernetworking/cni/cnitool": "cnitool"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	for _, p := range []string{"host-local", "bridge"} {
		src := filepath.Join("/usr/lib/cni", p)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("%s: %v (scripts/setup-host.sh installs containernetworking-plugins)", src, err)
		}
		if err := os.Symlink(src, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cniHost is one test host's CNI side: its node, the configuration
// directory (NETCONFPATH) and the plugins (CNI_PATH).
type cniHost struct {
	node      *testbed.Node
	bin, conf string
}

func newCNIHost(t *testing.T, node *testbed.Node, bin string) *cniHost {
	h := &cniHost{node: node, bin: bin, conf: t.TempDir()}
	h.writeConf(t, "blue", `{"type":"ofctl-cni","ovsdb":%q,"openflow":%q,"agentSocket":%q,"installTimeout":"60s"}`,
		node.DBAddr(), node.MgmtAddr("br-int"), testbed.AgentSocket(node))
	return h
}

func (h *cniHost) writeConf(t *testing.T, name, plugin string, args ...any) {
	t.Helper()
	h.writeConfVersion(t, "1.1.0", name, plugin, args...)
}

func (h *cniHost) writeConfVersion(t *testing.T, version, name, plugin string, args ...any) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":[`+plugin+`]}`, append([]any{version, name}, args...)...)
	if err := os.WriteFile(filepath.Join(h.conf, name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tool runs cnitool in the host's namespace (where a runtime runs it).
func (h *cniHost) tool(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", string(h.node.NS), "env", "NETCONFPATH=" + h.conf, "CNI_PATH=" + h.bin,
		filepath.Join(h.bin, "cnitool")}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (h *cniHost) mustTool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.tool(args...)
	if err != nil {
		t.Fatalf("cnitool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// plugin runs ofctl-cni itself, as a runtime does, with stdin conf.
func (h *cniHost) plugin(command, containerID, netns, ifname, conf string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", string(h.node.NS), filepath.Join(h.bin, "ofctl-cni"))
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + containerID, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifname,
		"CNI_PATH=" + h.bin, "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(conf)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut // a runtime reads the result or error from stdout alone; stderr is its log
	err := cmd.Run()
	if err != nil && errOut.Len() > 0 {
		err = fmt.Errorf("%w (stderr: %s)", err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), err
}

func (h *cniHost) pluginConf(extra string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni","ovsdb":%q,"openflow":%q,"agentSocket":%q,"installTimeout":"60s"%s}`,
		h.node.DBAddr(), h.node.MgmtAddr("br-int"), testbed.AgentSocket(h.node), extra)
}

// cniResult is the part of a CNI result the tests read.
type cniResult struct {
	Interfaces []struct {
		Name, Mac, Sandbox string
		Mtu                int
	}
	IPs []struct {
		Address, Gateway string
	}
	Routes []struct{ Dst, GW string }
	Code   uint
	Msg    string
}

func parseCNI(t *testing.T, out string) cniResult {
	t.Helper()
	var r cniResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("CNI output %q: %v", out, err)
	}
	return r
}

// cniPort is the OVS port (ovs-vsctl as the observer) whose
// external_ids:container_id is id, "" when there is none.
func cniPort(t *testing.T, n *testbed.Node, id string) string {
	t.Helper()
	out := n.Vsctl(t, "--bare", "--columns=name", "find", "Interface", fmt.Sprintf("external_ids:container_id=%q", id))
	return strings.TrimSpace(out)
}

func cnitoolID(netnsPath string) string { return cnitoolContainerID(netnsPath) }

// TestCNI: cnitool add/check/del with ofctl-cni on two hosts with real
// agents: the containers (agent IPAM on one host, host-local delegated on
// the other) ping each other across hosts; the port carries the endpoint
// external_ids; CHECK fails once the port is deleted; DEL twice and after
// the namespace is gone succeed and leave no port or veth; GC removes the
// container missing from the valid list only; STATUS fails without the
// agent; bad input gets the CNI error codes.
func TestCNI(t *testing.T) {
	testbed.Require(t)
	bin := cniBin(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := testbed.NewNode(t, "ha"), testbed.NewNode(t, "hb")
	testbed.Underlay(t, a, b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	out := testbed.AddOutside(t, a) // 198.51.100.2 behind ha's uplink, ha's default route
	pa := agStart(t, a, "ha", "192.0.2.1", file)
	agStart(t, b, "hb", "192.0.2.2", file)
	ha, hb := newCNIHost(t, a, bin), newCNIHost(t, b, bin)
	// Debian's host-local (1.1.1) speaks spec 1.0.0 at most: the older
	// version works with ofctl-cni too.
	hb.writeConfVersion(t, "1.0.0", "bluehl", `{"type":"ofctl-cni","network":"blue","ovsdb":%q,"openflow":%q,"agentSocket":%q,"installTimeout":"60s",`+
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.100.0.0/16","rangeStart":"10.100.2.200","rangeEnd":"10.100.2.210"}]],"dataDir":%q}}`,
		b.DBAddr(), b.MgmtAddr("br-int"), testbed.AgentSocket(b), t.TempDir())

	c1, c2 := atNewNS(t, "cni1"), atNewNS(t, "cni2")
	r1 := parseCNI(t, ha.mustTool(t, "add", "blue", atNSPath(c1)))
	r2 := parseCNI(t, hb.mustTool(t, "add", "bluehl", atNSPath(c2)))
	if len(r1.IPs) != 1 || !strings.HasPrefix(r1.IPs[0].Address, "10.100.1.") || !strings.HasSuffix(r1.IPs[0].Address, "/16") {
		t.Fatalf("agent IPAM result %+v: want one 10.100.1.x/16", r1)
	}
	if len(r2.IPs) != 1 || r2.IPs[0].Address != "10.100.2.200/16" || r2.IPs[0].Gateway != "10.100.2.1" {
		t.Fatalf("host-local result %+v: want 10.100.2.200/16 with hb's gateway 10.100.2.1 (not host-local's 10.100.0.1)", r2)
	}
	if r1.Interfaces[0].Name != "eth0" || r1.Interfaces[0].Sandbox != atNSPath(c1) || r1.Interfaces[0].Mtu == 0 {
		t.Fatalf("interface %+v", r1.Interfaces)
	}
	if gw := r1.IPs[0].Gateway; gw != "10.100.1.1" || len(r1.Routes) != 1 || r1.Routes[0].Dst != "0.0.0.0/0" || r1.Routes[0].GW != gw {
		t.Fatalf("gateway %q, routes %+v; want ha's gateway 10.100.1.1 and the default route via it", gw, r1.Routes)
	}
	if route := atMustCmd(t, "ip", "-n", c1, "route", "show", "default"); !strings.Contains(route, "via 10.100.1.1 dev eth0") {
		t.Fatalf("default route in %s: %q", c1, route)
	}
	ip1, ip2 := strings.Split(r1.IPs[0].Address, "/")[0], strings.Split(r2.IPs[0].Address, "/")[0]
	// Observers: the container's address (ip), the port's external_ids (ovs-vsctl).
	if out := atMustCmd(t, "ip", "-n", c1, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, r1.IPs[0].Address) {
		t.Fatalf("eth0 in %s: %s", c1, out)
	}
	id1 := cnitoolID(atNSPath(c1))
	port1 := cniPort(t, a, id1)
	if port1 == "" {
		t.Fatalf("no port with container_id %s", id1)
	}
	ext := a.Vsctl(t, "get", "Interface", port1, "external_ids")
	for _, kv := range []string{`container_iface=eth0`, `ofctl-agent.owner=cni`, `ofctl-agent.network=blue`, `ofctl-agent.ip="` + ip1 + `"`, `ofctl-agent.installed="` + ip1 + `"`} {
		if !strings.Contains(ext, kv) {
			t.Errorf("port %s external_ids %s: no %s", port1, ext, kv)
		}
	}
	if out := a.Ofctl(t, "dump-flows", "br-int"); !strings.Contains(out, ip1) {
		t.Errorf("no flow of br-int names %s", ip1)
	}
	testbed.Eventually(t, 20*time.Second, func() bool {
		_, err := atCmd("ip", "netns", "exec", c1, "ping", "-c1", "-W1", ip2)
		return err == nil
	}, "%s (%s, agent IPAM) never reached %s (%s, host-local) across hosts", c1, ip1, c2, ip2)
	ha.mustTool(t, "check", "blue", atNSPath(c1))
	hb.mustTool(t, "check", "bluehl", atNSPath(c2))
	// The outside through ha's gateway (masqueraded by the agent).
	testbed.Eventually(t, 20*time.Second, func() bool {
		_, err := atCmd("ip", "netns", "exec", c1, "ping", "-c1", "-W1", out.Addr.String())
		return err == nil
	}, "%s never reached the outside %s through its gateway", c1, out.Addr)

	t.Run("CHECK after the flows are deleted", func(t *testing.T) {
		// The agent puts deleted flows back at once: freeze it meanwhile.
		if err := syscall.Kill(pa.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		cookie := fmt.Sprintf("cookie=%#x/%#x", pipeline.Endpoint{Port: port1}.Cookie(), pipeline.ObjectMask)
		a.Ofctl(t, "del-flows", "br-int", cookie)
		if out := a.Ofctl(t, "dump-flows", "br-int", cookie); strings.Contains(out, "cookie=") {
			t.Fatalf("flows of %s still there: %s", port1, out)
		}
		out, err := ha.tool("check", "blue", atNSPath(c1))
		if cerr := syscall.Kill(pa.Pid(), syscall.SIGCONT); cerr != nil {
			t.Fatal(cerr)
		}
		if err == nil || !strings.Contains(out, "has no flows for port "+port1) {
			t.Fatalf("check without the flows: %v %s", err, out)
		}
		testbed.Eventually(t, 20*time.Second, func() bool { _, err := ha.tool("check", "blue", atNSPath(c1)); return err == nil },
			"CHECK never passed again after the agent was resumed")
	})
	t.Run("CHECK after the port is deleted, then DEL twice", func(t *testing.T) {
		a.Vsctl(t, "del-port", "br-int", port1)
		out, err := ha.tool("check", "blue", atNSPath(c1))
		if err == nil || !strings.Contains(out, "no OVS port") {
			t.Fatalf("check without the port: %v %s", err, out)
		}
		ha.mustTool(t, "del", "blue", atNSPath(c1))
		ha.mustTool(t, "del", "blue", atNSPath(c1))
		if out := atMustCmd(t, "ip", "-n", string(a.NS), "-o", "link"); strings.Contains(out, port1) {
			t.Fatalf("veth %s still in the host: %s", port1, out)
		}
		if out := atMustCmd(t, "ip", "-n", c1, "-o", "link"); strings.Contains(out, "eth0") {
			t.Fatalf("eth0 still in the container: %s", out)
		}
	})
	t.Run("DEL after the namespace is deleted", func(t *testing.T) {
		c3 := atNewNS(t, "cni3")
		ha.mustTool(t, "add", "blue", atNSPath(c3))
		id3 := cnitoolID(atNSPath(c3))
		port3 := cniPort(t, a, id3)
		atMustCmd(t, "ip", "netns", "delete", c3)
		ha.mustTool(t, "del", "blue", atNSPath(c3))
		if p := cniPort(t, a, id3); p != "" {
			t.Fatalf("port %s left", p)
		}
		if out := atMustCmd(t, "ip", "-n", string(a.NS), "-o", "link"); strings.Contains(out, port3) {
			t.Fatalf("veth %s left: %s", port3, out)
		}
	})
	t.Run("GC with a list that omits one container", func(t *testing.T) {
		c4, c5 := atNewNS(t, "cni4"), atNewNS(t, "cni5")
		for _, c := range []string{c4, c5} {
			if out, err := ha.plugin("ADD", "gc-"+c, atNSPath(c), "eth0", ha.pluginConf("")); err != nil {
				t.Fatalf("ADD %s: %v %s", c, err, out)
			}
		}
		p4, p5 := cniPort(t, a, "gc-"+c4), cniPort(t, a, "gc-"+c5)
		valid := fmt.Sprintf(`,"cni.dev/valid-attachments":[{"containerID":%q,"ifname":"eth0"}]`, "gc-"+c4)
		if out, err := ha.plugin("GC", "", "", "", ha.pluginConf(valid)); err != nil {
			t.Fatalf("GC: %v %s", err, out)
		}
		if p := cniPort(t, a, "gc-"+c4); p != p4 {
			t.Fatalf("GC removed the valid container's port %s", p4)
		}
		if p := cniPort(t, a, "gc-"+c5); p != "" {
			t.Fatalf("GC left %s (%s)", p, p5)
		}
		if out := atMustCmd(t, "ip", "-n", c5, "-o", "link"); strings.Contains(out, "eth0") {
			t.Fatalf("eth0 left in %s: %s", c5, out)
		}
		if _, err := atCmd("ip", "netns", "exec", c4, "ping", "-c1", "-W2", ip2); err != nil {
			t.Fatalf("the container GC kept lost its path: %v", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name, netns, conf string
			code              uint
			msg               string
		}{
			{"unknown network", atNSPath(c2), strings.Replace(ha.pluginConf(""), `"name":"blue"`, `"name":"green"`, 1), 7, "network green is not in the agent's cluster view"},
			{"no such namespace", "/var/run/netns/ofctl-cni-none", ha.pluginConf(""), 8, "cannot open CNI_NETNS"},
			{"bad field", atNSPath(c2), ha.pluginConf(`,"mtu":12`), 7, "invalid mtu"},
			{"not json", atNSPath(c2), "{", 6, "network config"}, // skel's own check
		} {
			out, err := ha.plugin("ADD", "bad", tc.netns, "eth0", tc.conf)
			r := parseCNI(t, out)
			if err == nil || r.Code != tc.code || !strings.Contains(r.Msg, tc.msg) {
				t.Errorf("%s: %v %s; want code %d with %q", tc.name, err, out, tc.code, tc.msg)
			}
		}
		if p := cniPort(t, a, "bad"); p != "" {
			t.Fatalf("a refused ADD left port %s", p)
		}
	})
	t.Run("ADD rolled back when the agent refuses the endpoint", func(t *testing.T) {
		// host-local hands out an address of hb's share on ha: the agent
		// refuses the port (its ofctl-agent.error), ADD undoes everything.
		c6 := atNewNS(t, "cni6")
		hl := `,"ipam":{"type":"host-local","subnet":"10.100.0.0/16","rangeStart":"10.100.2.250","rangeEnd":"10.100.2.250","dataDir":"` + t.TempDir() + `"}`
		conf := strings.Replace(ha.pluginConf(hl), `"cniVersion":"1.1.0"`, `"cniVersion":"1.0.0"`, 1)
		out, err := ha.plugin("ADD", "refused-"+c6, atNSPath(c6), "eth0", conf)
		r := parseCNI(t, out)
		if err == nil || r.Code != 7 || !strings.Contains(r.Msg, "the agent refuses port") || !strings.Contains(out, "rolled back") {
			t.Fatalf("ADD of another host's address: %v %s; want code 7, refused, rolled back", err, out)
		}
		if p := cniPort(t, a, "refused-"+c6); p != "" {
			t.Fatalf("port %s left after the rollback", p)
		}
		if out := atMustCmd(t, "ip", "-n", c6, "-o", "link"); strings.Contains(out, "eth0") {
			t.Fatalf("eth0 left in %s: %s", c6, out)
		}
	})
	t.Run("STATUS", func(t *testing.T) {
		ha.mustTool(t, "status", "blue", atNSPath(c2))
		pa.Stop(syscall.SIGKILL)
		out, err := ha.plugin("STATUS", "", "", "", ha.pluginConf(""))
		if r := parseCNI(t, out); err == nil || r.Code != 50 {
			t.Fatalf("STATUS without the agent: %v %s; want code 50", err, out)
		}
		pa.Start(t)
		pa.WaitReady(t, 30*time.Second)
		testbed.Eventually(t, 20*time.Second, func() bool { _, err := ha.tool("status", "blue", atNSPath(c2)); return err == nil },
			"STATUS never succeeded after the agent came back")
	})
	hb.mustTool(t, "del", "bluehl", atNSPath(c2))
	if p := cniPort(t, b, cnitoolID(atNSPath(c2))); p != "" {
		t.Fatalf("port %s left after DEL", p)
	}
}

// TestCNIParallelAdds: 100 ADDs at once on one host get 100 distinct
// addresses, every container reachable from the first.
func TestCNIParallelAdds(t *testing.T) {
	b := newIPBed(t)
	h := newCNIHost(t, b.node, cniBin(t))
	const n = 100
	ns := make([]string, n)
	for i := range ns {
		ns[i] = atNewNS(t, fmt.Sprintf("p%d", i))
	}
	outs, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			outs[i], errs[i] = h.plugin("ADD", fmt.Sprintf("par-%d", i), atNSPath(ns[i]), "eth0", h.pluginConf(""))
		})
	}
	wg.Wait()
	t.Logf("%d parallel ADDs in %v", n, time.Since(start))
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v %s", i, errs[i], outs[i])
		}
		r := parseCNI(t, outs[i])
		ip := strings.Split(r.IPs[0].Address, "/")[0]
		if j, dup := seen[ip]; dup {
			t.Fatalf("ADDs %d and %d both got %s", j, i, ip)
		}
		seen[ip] = i
	}
	for ip, i := range seen {
		if i == 0 {
			continue
		}
		if _, err := atCmd("ip", "netns", "exec", ns[0], "ping", "-c1", "-W3", ip); err != nil {
			t.Errorf("container %d (%s) not reachable from container 0: %v", i, ip, err)
		}
	}
}

// cnitoolContainerID is the container id cnitool gives a namespace path:
// "cnitool-" and the first 10 bytes of its SHA-512 in hex.
func cnitoolContainerID(path string) string {
	s := sha512.Sum512([]byte(path))
	return fmt.Sprintf("cnitool-%x", s[:10])
}
