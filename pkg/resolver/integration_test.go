package resolver

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// dnsBed is a host namespace with real OVS: a bridge (NORMAL switching)
// with one internal port per network carrying its gateway address, as the
// gateway issue puts them on br-int; containers on the bridge; an
// "outside" namespace behind the host running dnsmasq as the upstream.
type dnsBed struct {
	node       *testbed.Node
	containers map[string]*testbed.Container
	outside    *testbed.Container
	dnsmasqLog string
	config     string // the resolver process's config file
	cfg        *processConfig
}

const (
	bedBridge   = "br-dns"
	outsideName = "www.outside.test"
	outsideAddr = "198.51.100.80"
)

var bedNetworks = []struct {
	name, gw, subnet string
}{
	{"blue", "10.100.1.1/16", "10.100.0.0/16"},
	{"red", "10.200.1.1/16", "10.200.0.0/16"},
}

// bedContainers: name, network, address. web-a and web-b are both "web".
var bedContainers = []struct{ ns, dnsName, network, addr string }{
	{"c1", "c1", "blue", "10.100.0.5/16"},
	{"c2", "c2", "blue", "10.100.0.6/16"},
	{"weba", "web", "blue", "10.100.0.10/16"},
	{"webb", "web", "blue", "10.100.0.11/16"},
	{"r1", "r1", "red", "10.200.0.5/16"},
}

func newDNSBed(t *testing.T) *dnsBed {
	t.Helper()
	testbed.Require(t)
	testbed.RequireTools(t, "dig", "nslookup", "dnsmasq", "ping", "getent", "ethtool")
	b := &dnsBed{node: testbed.NewNode(t, "dnshost"), containers: map[string]*testbed.Container{}}
	n := b.node
	n.Vsctl(t, "add-br", bedBridge, "--", "set", "bridge", bedBridge, "datapath_type=netdev")
	b.cfg = &processConfig{Port: DefaultPort, Names: map[string][]Record{}}
	for _, nw := range bedNetworks {
		port := "gw-" + nw.name
		n.Vsctl(t, "add-port", bedBridge, port, "--", "set", "interface", port, "type=internal")
		n.Exec(t, "ip", "addr", "add", nw.gw, "dev", port)
		n.Exec(t, "ip", "link", "set", port, "up")
		n.Exec(t, "ethtool", "-K", port, "tx", "off") // the userspace datapath forwards partial checksums as they are
		gw := netip.MustParsePrefix(nw.gw).Addr()
		b.cfg.Networks = append(b.cfg.Networks, processNetwork{nw.name, gw, netip.MustParsePrefix(nw.subnet)})
	}
	for _, c := range bedContainers {
		addr := netip.MustParsePrefix(c.addr)
		ct := n.AddContainer(t, c.ns, testbed.ContainerOpts{Addr: addr})
		n.Vsctl(t, "add-port", bedBridge, ct.HostIf)
		ct.Exec(t, "ethtool", "-K", "eth0", "tx", "off")
		gw := gatewayOf(c.network)
		ct.Exec(t, "ip", "route", "add", "default", "via", gw.String())
		b.containers[c.ns] = ct
		b.cfg.Names[c.network] = append(b.cfg.Names[c.network], Record{Key: c.ns, Name: c.dnsName, Addr: addr.Addr()})
		writeNetnsResolvConf(t, ct.NS, gw, c.network+"."+DefaultDomain)
	}
	b.startOutside(t)
	b.config = tempConfig(t)
	writeProcessConfig(t, b.config, b.cfg)
	return b
}

func gatewayOf(network string) netip.Addr {
	for _, nw := range bedNetworks {
		if nw.name == network {
			return netip.MustParsePrefix(nw.gw).Addr()
		}
	}
	panic(network)
}

// writeNetnsResolvConf gives a namespace its resolv.conf: `ip netns exec`
// bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
func writeNetnsResolvConf(t testing.TB, ns testbed.NetNS, server netip.Addr, search string) {
	t.Helper()
	removeStaleNetnsConf()
	dir := filepath.Join("/etc/netns", string(ns))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := fmt.Sprintf("nameserver %s\nsearch %s\noptions timeout:1 attempts:3\n", server, search)
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// removeStaleNetnsConf removes the /etc/netns directories of test
// namespaces ("ofat-<pid>-...") whose test process is gone (a crashed run).
func removeStaleNetnsConf() {
	entries, _ := os.ReadDir("/etc/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), testbed.Prefix)
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); os.IsNotExist(err) {
			os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
		}
	}
}

// startOutside runs dnsmasq in an "outside" namespace behind the host
// (198.51.100.0/24, TEST-NET-2), answering one name from a hosts file and
// forwarding nothing, logging every query it gets.
func (b *dnsBed) startOutside(t *testing.T) {
	n := b.node
	b.outside = n.AddContainer(t, "outside", testbed.ContainerOpts{Addr: netip.MustParsePrefix("198.51.100.53/24")})
	n.Exec(t, "ip", "addr", "add", "198.51.100.1/24", "dev", b.outside.HostIf)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte(outsideAddr+" "+outsideName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.dnsmasqLog = filepath.Join(dir, "dnsmasq.log")
	startDnsmasq(t, b.outside.NS, "198.51.100.53", hosts, b.dnsmasqLog)
	b.cfg.Upstreams = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53")}
}

// startDnsmasq runs dnsmasq in ns on addr:53 serving a hosts file only
// (never forwarding), in the foreground; it is stopped by its pid.
func startDnsmasq(t testing.TB, ns testbed.NetNS, addr, hosts, logFile string, extra ...string) *exec.Cmd {
	t.Helper()
	args := []string{"netns", "exec", string(ns), "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--addn-hosts=" + hosts, "--listen-address=" + addr, "--bind-interfaces",
		"--pid-file=", "--user=root", "--group=root", "--no-ping"}
	if logFile != "" {
		args = append(args, "--log-queries", "--log-facility="+logFile)
	}
	cmd := exec.Command("ip", append(args, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Ready once it answers its own name.
	testbed.Eventually(t, 10*time.Second, func() bool {
		out, err := ns.Exec("dig", "+time=1", "+tries=1", "+short", "@"+addr, outsideNameFor(hosts))
		return err == nil && strings.TrimSpace(out) != ""
	}, "dnsmasq in %s does not answer", ns)
	return cmd
}

// outsideNameFor is the first name of a hosts file.
func outsideNameFor(hosts string) string {
	b, _ := os.ReadFile(hosts)
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "none"
	}
	return f[1]
}

// digResult is what dig printed: the status and the answer records' data.
type digResult struct {
	status  string
	answers []string // sorted
	out     string
}

var statusRE = regexp.MustCompile(`status: (\w+)`)

// dig runs dig in ns against server (over TCP with tcp) and parses it.
func dig(t testing.TB, ns testbed.NetNS, server netip.Addr, args ...string) digResult {
	t.Helper()
	full := append([]string{"dig", "+time=2", "+tries=1", "+noall", "+comments", "+answer", "@" + server.String()}, args...)
	out, err := ns.Exec(full...)
	if err != nil {
		t.Fatalf("%s in %s: %v", strings.Join(full, " "), ns, err)
	}
	r := digResult{out: out}
	if m := statusRE.FindStringSubmatch(out); m != nil {
		r.status = m[1]
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && !strings.HasPrefix(line, ";") {
			r.answers = append(r.answers, f[4])
		}
	}
	slices.Sort(r.answers)
	return r
}

func (r digResult) is(status string, answers ...string) bool {
	slices.Sort(answers)
	return r.status == status && slices.Equal(r.answers, answers)
}

func TestIntegrationNamespaces(t *testing.T) {
	b := newDNSBed(t)
	startResolver(t, b.node.NS, b.config)
	c1, r1 := b.containers["c1"].NS, b.containers["r1"].NS
	blue, red := gatewayOf("blue"), gatewayOf("red")

	checks := []struct {
		name   string
		ns     testbed.NetNS
		server netip.Addr
		args   []string
		status string
		want   []string
	}{
		{"bare name", c1, blue, []string{"c2"}, "NOERROR", []string{"10.100.0.6"}},
		{"qualified name", c1, blue, []string{"c2.blue.ofctl.internal"}, "NOERROR", []string{"10.100.0.6"}},
		{"PTR", c1, blue, []string{"-x", "10.100.0.6"}, "NOERROR", []string{"c2.blue.ofctl.internal."}},
		{"two containers named web", c1, blue, []string{"web"}, "NOERROR", []string{"10.100.0.10", "10.100.0.11"}},
		{"two containers named web, TCP", c1, blue, []string{"+tcp", "web.blue.ofctl.internal"}, "NOERROR", []string{"10.100.0.10", "10.100.0.11"}},
		{"a name that does not exist", c1, blue, []string{"nobody.blue.ofctl.internal"}, "NXDOMAIN", nil},
		{"forwarded to the outside resolver", c1, blue, []string{outsideName}, "NOERROR", []string{outsideAddr}},
		{"red resolves its own name (control)", r1, red, []string{"r1"}, "NOERROR", []string{"10.200.0.5"}},
		{"red asks its resolver for a blue name", r1, red, []string{"c2"}, "NXDOMAIN", nil},
		{"red asks for blue's qualified name", r1, red, []string{"c2.blue.ofctl.internal"}, "NXDOMAIN", nil},
		{"red asks blue's resolver", r1, blue, []string{"c2"}, "REFUSED", nil},
		{"red asks blue's resolver a PTR", r1, blue, []string{"-x", "10.100.0.6"}, "REFUSED", nil},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if r := dig(t, c.ns, c.server, c.args...); !r.is(c.status, c.want...) {
				t.Errorf("dig %v @%v: %s %v, want %s %v\n%s", c.args, c.server, r.status, r.answers, c.status, c.want, r.out)
			}
		})
	}
	// The outside name went through the host: dnsmasq saw the query from
	// the host's address, and answered it.
	log, _ := os.ReadFile(b.dnsmasqLog)
	if !strings.Contains(string(log), "query[A] "+outsideName+" from 198.51.100.1") {
		t.Errorf("dnsmasq did not get the forwarded query from the host:\n%s", log)
	}

	// Through the C library with the namespace's resolv.conf, as a program would.
	t.Run("ping by name", func(t *testing.T) {
		for _, name := range []string{"c2", "c2.blue.ofctl.internal"} {
			out, err := c1.Exec("ping", "-c1", "-W2", name)
			if err != nil || !strings.Contains(out, "(10.100.0.6)") {
				t.Errorf("ping -c1 %s from c1: %v\n%s", name, err, out)
			}
		}
	})
	t.Run("nslookup", func(t *testing.T) {
		out, _ := c1.Exec("nslookup", "10.100.0.6")
		if !strings.Contains(out, "name = c2.blue.ofctl.internal.") {
			t.Errorf("nslookup 10.100.0.6 from c1:\n%s", out)
		}
	})
	t.Run("red cannot resolve blue's name", func(t *testing.T) {
		out, err := r1.Exec("getent", "hosts", "r1") // control: the same path works for red's own name
		if err != nil || !strings.Contains(out, "10.200.0.5") {
			t.Fatalf("control: getent hosts r1 in r1: %v %s", err, out)
		}
		if out, err := r1.Exec("getent", "hosts", "c2"); err == nil {
			t.Errorf("getent hosts c2 in r1 resolved: %s", out)
		}
	})
}

// TestIntegrationUpdate: a name removed and one added while serving are
// seen by the next query (SIGHUP makes the process Replace its names).
func TestIntegrationUpdate(t *testing.T) {
	b := newDNSBed(t)
	p, _ := startResolver(t, b.node.NS, b.config)
	c1 := b.containers["c1"].NS
	blue := gatewayOf("blue")
	if r := dig(t, c1, blue, "web"); !r.is("NOERROR", "10.100.0.10", "10.100.0.11") {
		t.Fatalf("before: %v", r.out)
	}
	b.cfg.Names["blue"] = slices.DeleteFunc(b.cfg.Names["blue"], func(r Record) bool { return r.Key == "weba" })
	b.cfg.Names["blue"] = append(b.cfg.Names["blue"], Record{Key: "db", Name: "db", Addr: netip.MustParseAddr("10.100.0.20")})
	writeProcessConfig(t, b.config, b.cfg)
	_ = p.cmd.Process.Signal(sighup)
	testbed.Eventually(t, 5*time.Second, func() bool {
		return dig(t, c1, blue, "db").is("NOERROR", "10.100.0.20")
	}, "the added name is not answered")
	if r := dig(t, c1, blue, "web"); !r.is("NOERROR", "10.100.0.11") {
		t.Errorf("after removing web-a: %v", r.out)
	}
	if r := dig(t, c1, blue, "-x", "10.100.0.10"); !r.is("NXDOMAIN") {
		t.Errorf("PTR of the removed address: %v", r.out)
	}
}
