package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// Container names across hosts (issue 17, docs/dns.md): two hosts in
// namespaces, each with its own OVS and `ofctl-agent run` in etcd mode
// (one etcd in the test process), blue and red with a gateway on each
// host; containers attached with `ofctl-agent attach --name`, which also
// writes their /etc/netns/<ns>/resolv.conf; an "outside" namespace behind
// host A runs dnsmasq, A's upstream resolver.

const dnPrefix = "/e2e-dns"

var (
	dnBlue = cluster.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}
	dnRed  = cluster.Network{Name: "red", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/16")}
)

const (
	dnOutsideName = "www.outside.test"
	dnOutsideAddr = "198.51.100.80"
	dnTTL         = 2 * time.Second // the hosts' etcd lease
)

type dnHost struct {
	node  *testbed.Node
	agent *testbed.Agent
	cli   *atCLI
	gw    map[string]string // network -> gateway address
}

type dnCtr struct {
	ns, name, network string
	ip                netip.Addr
	host              *dnHost
}

func dnSetup(t *testing.T) (a, b *dnHost, dnsmasqLog string) {
	t.Helper()
	testbed.Require(t)
	testbed.RequireTools(t, "dig", "dnsmasq", "ping", "getent")
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	for _, n := range []cluster.Network{dnBlue, dnRed} {
		etPut(t, c, etcd.NetworkKey(dnPrefix, n.Name), string(etcd.EncodeNetwork(n)))
	}
	a = &dnHost{node: testbed.NewNode(t, "da"), gw: map[string]string{"blue": "10.100.1.1", "red": "10.200.1.1"}}
	b = &dnHost{node: testbed.NewNode(t, "db"), gw: map[string]string{"blue": "10.100.2.1", "red": "10.200.2.1"}}
	testbed.Underlay(t, a.node, b.node, etTunnel(0), etTunnel(1))
	out := testbed.AddOutside(t, a.node)
	dnsmasqLog = dnStartDnsmasq(t, out)
	for i, h := range []*dnHost{a, b} {
		args := append(testbed.AgentArgs(h.node, h.node.Name, etTunnel(i).Addr().String()),
			"--cluster-backend", "etcd", "--etcd-endpoints", srv.Endpoint(), "--etcd-prefix", dnPrefix,
			"--etcd-lease-ttl", dnTTL.String(), "--etcd-dial-timeout", "1s", "--verify-interval", "300ms",
			"--cluster-file", filepath.Join(h.node.Dir, "no-cluster-file.yaml"),
			"--gateways", "blue="+h.gw["blue"]+",red="+h.gw["red"], "--dns-upstreams", out.Addr.String())
		h.agent = testbed.StartAgent(t, filepath.Join(h.node.Dir, "agent-"+h.node.Name+".log"), args...)
		h.agent.WaitReady(t, 20*time.Second)
		h.cli = &atCLI{bin: atBuild(t), node: h.node}
		testbed.Eventually(t, 20*time.Second, func() bool { return len(dnServed(t, h)) == 2 },
			"agent %s never served blue and red: %v", h.node.Name, dnServed(t, h))
	}
	return a, b, dnsmasqLog
}

// dnStartDnsmasq runs dnsmasq in the outside namespace, answering one name
// from a hosts file and forwarding nothing, logging its queries.
func dnStartDnsmasq(t *testing.T, out *testbed.Outside) string {
	dir := t.TempDir()
	hosts, logFile := filepath.Join(dir, "hosts"), filepath.Join(dir, "dnsmasq.log")
	if err := os.WriteFile(hosts, []byte(dnOutsideAddr+" "+dnOutsideName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", string(out.NS), "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--addn-hosts="+hosts, "--listen-address="+out.Addr.String(), "--bind-interfaces",
		"--pid-file=", "--user=root", "--group=root", "--log-queries", "--log-facility="+logFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testbed.Eventually(t, 10*time.Second, func() bool {
		o, err := out.NS.Exec("dig", "+time=1", "+tries=1", "+short", "@"+out.Addr.String(), dnOutsideName)
		return err == nil && strings.TrimSpace(o) == dnOutsideAddr
	}, "dnsmasq in %s does not answer", out.NS)
	return logFile
}

// dnServed is what the agent's /debug/names says it serves: network -> names.
func dnServed(t *testing.T, h *dnHost) map[string][]string {
	code, body, err := h.agent.Get("/debug/names?format=json")
	if err != nil || code != 200 {
		return nil
	}
	var rep struct {
		Networks []struct {
			Network string `json:"network"`
			Names   []struct {
				Name string `json:"name"`
			} `json:"names"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("/debug/names: %v\n%s", err, body)
	}
	out := map[string][]string{}
	for _, n := range rep.Networks {
		out[n.Network] = []string{}
		for _, e := range n.Names {
			out[n.Network] = append(out[n.Network], e.Name)
		}
	}
	return out
}

// attach attaches a new namespace to host h's bridge in network with
// `ofctl-agent attach --name` (the agent allocates the address).
func (h *dnHost) attach(t *testing.T, label, network, name string) dnCtr {
	t.Helper()
	ns := atNewNS(t, label)
	r := h.cli.mustJSON(t, "attach", "--network", network, "--name", name, "--node-name", h.node.Name, atNSPath(ns))
	p, err := netip.ParsePrefix(r.IP)
	if err != nil || r.Gateway != h.gw[network] || !r.Installed {
		t.Fatalf("attach %s: %+v", label, r)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/etc/netns", ns)) })
	return dnCtr{ns: ns, name: name, network: network, ip: p.Addr(), host: h}
}

// dig asks c's resolver (its gateway) and returns the status and answers.
func (c dnCtr) dig(t *testing.T, args ...string) (string, []string) {
	t.Helper()
	full := append([]string{"ip", "netns", "exec", c.ns, "dig", "+time=1", "+tries=2", "@" + c.host.gw[c.network]}, args...)
	out, _ := exec.Command(full[0], full[1:]...).CombinedOutput()
	r := parseDig(string(out))
	return r.status, r.answers
}

type digOut struct {
	status  string
	answers []string
}

// parseDig reads dig's status and the data of its answer section, sorted.
func parseDig(out string) digOut {
	var r digOut
	inAnswer := false
	for _, line := range strings.Split(out, "\n") {
		if _, st, ok := strings.Cut(line, "status: "); ok {
			r.status, _, _ = strings.Cut(st, ",")
		}
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case inAnswer && strings.TrimSpace(line) == "":
			inAnswer = false
		case inAnswer:
			if f := strings.Fields(line); len(f) >= 5 {
				r.answers = append(r.answers, f[len(f)-1])
			}
		}
	}
	slices.Sort(r.answers)
	return r
}

func (c dnCtr) wants(t *testing.T, what, status string, want []string, args ...string) {
	t.Helper()
	if st, got := c.dig(t, args...); st != status || !slices.Equal(got, want) {
		t.Errorf("%s: dig %v from %s: %s %v, want %s %v", what, args, c.name, st, got, status, want)
	}
}

// until polls c's resolver until dig args gives status and want; it
// returns how long that took.
func (c dnCtr) until(t *testing.T, timeout time.Duration, status string, want []string, args ...string) time.Duration {
	t.Helper()
	return testbed.Eventually(t, timeout, func() bool {
		st, got := c.dig(t, args...)
		return st == status && slices.Equal(got, want)
	}, "dig %v from %s never gave %s %v", args, c.name, status, want)
}

func TestDNSAcrossHosts(t *testing.T) {
	a, b, dnsmasqLog := dnSetup(t)
	c1 := a.attach(t, "c1", "blue", "c1")
	c2 := b.attach(t, "c2", "blue", "c2")
	r1 := a.attach(t, "r1", "red", "r1")
	r2 := b.attach(t, "r2", "red", "r2")
	w1 := a.attach(t, "w1", "blue", "web")
	w2 := b.attach(t, "w2", "blue", "web")
	ip := func(cs ...dnCtr) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ip.String())
		}
		slices.Sort(out)
		return out
	}
	// c2's name reaches A through etcd.
	took := c1.until(t, 20*time.Second, "NOERROR", ip(c2), "c2")
	t.Logf("c2 (host B) resolvable from c1 (host A) %v after its attach returned", took.Round(time.Millisecond))

	t.Run("ping by name", func(t *testing.T) {
		testbed.Eventually(t, 20*time.Second, func() bool {
			_, err := atCmd("ip", "netns", "exec", c1.ns, "ping", "-c1", "-W1", c2.ip.String())
			return err == nil
		},
			"c1 never reached c2's address %s (control)", c2.ip)
		if b, _ := os.ReadFile(filepath.Join("/etc/netns", c1.ns, "resolv.conf")); !strings.Contains(string(b), "nameserver 10.100.1.1\nsearch blue.ofctl.internal\n") {
			t.Fatalf("attach wrote no resolv.conf with the gateway and the search domain for c1:\n%s", b)
		}
		// The README's commands, c1 being the namespace's name.
		cmds := rmCommands(t, dmRepoRoot(t), "## Container names (DNS)")
		if len(cmds) != 2 {
			t.Fatalf("README's Container names block changed: %q", cmds)
		}
		for _, cmd := range cmds {
			cmd = strings.Replace(cmd, "ip netns exec c1 ", "ip netns exec "+c1.ns+" ", 1)
			if out, err := rmShell(t.TempDir(), cmd); err != nil || !strings.Contains(string(out), c2.ip.String()) {
				t.Errorf("README: %s: %v\n%s", cmd, err, out)
			}
		}
		for _, name := range []string{"c2", "c2.blue.ofctl.internal"} {
			out, err := exec.Command("ip", "netns", "exec", c1.ns, "ping", "-c1", "-W2", name).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "("+c2.ip.String()+")") {
				t.Errorf("ping -c1 %s from c1: %v\n%s", name, err, out)
			}
		}
	})
	t.Run("answers", func(t *testing.T) {
		c1.wants(t, "PTR of c2's address", "NOERROR", []string{"c2.blue.ofctl.internal."}, "-x", c2.ip.String())
		c1.wants(t, "two web on two hosts", "NOERROR", ip(w1, w2), "web")
		c1.wants(t, "two web on two hosts, qualified, TCP", "NOERROR", ip(w1, w2), "+tcp", "web.blue.ofctl.internal")
		c1.wants(t, "unknown name", "NXDOMAIN", nil, "nobody.blue.ofctl.internal")
		c1.wants(t, "unknown single label", "NXDOMAIN", nil, "nobody")
		r1.wants(t, "red's own name from B (control)", "NOERROR", ip(r2), "r2")
		r1.wants(t, "red asks for blue's c2", "NXDOMAIN", nil, "c2")
		r1.wants(t, "red asks for blue's qualified c2", "NXDOMAIN", nil, "c2.blue.ofctl.internal")
		c1.wants(t, "outside name, forwarded", "NOERROR", []string{dnOutsideAddr}, dnOutsideName)
		log, _ := os.ReadFile(dnsmasqLog)
		if !strings.Contains(string(log), "query[A] "+dnOutsideName+" from "+testbed.OutsideHostAddr.String()) {
			t.Errorf("dnsmasq did not get the forwarded query from host A:\n%s", log)
		}
	})
	t.Run("debug and metrics", func(t *testing.T) {
		got := dnServed(t, a)
		if !slices.Equal(got["blue"], []string{"c1", "c2", "web"}) || !slices.Equal(got["red"], []string{"r1", "r2"}) {
			t.Errorf("A's /debug/names: %v", got)
		}
		if n := a.agent.Metric(t, `ofctl_agent_dns_answers_total{kind="forwarded",network="blue"}`); n < 1 {
			t.Errorf("A's forwarded answers in blue: %v", n)
		}
		if n := a.agent.Metric(t, `ofctl_agent_dns_answers_total{kind="nxdomain",network="red"}`); n < 2 {
			t.Errorf("A's NXDOMAIN answers in red: %v", n)
		}
	})

	// Changes: a rename on B, a container removed on B, then B killed.
	t.Run("rename", func(t *testing.T) {
		start := time.Now()
		b.node.Vsctl(t, "set", "interface", dnPort(t, b, w2), "external_ids:ofctl-agent.name=web2")
		c1.until(t, 20*time.Second, "NOERROR", ip(w2), "web2")
		c1.until(t, 20*time.Second, "NOERROR", ip(w1), "web")
		t.Logf("w2 renamed web -> web2 on B: seen from c1 on A after %v", time.Since(start).Round(time.Millisecond))
	})
	t.Run("container removed", func(t *testing.T) {
		// The name and A's flows to c2 go from the same view: compare.
		start := time.Now()
		b.cli.mustRun(t, "detach", atNSPath(c2.ns))
		var nameGone, flowsGone time.Duration
		testbed.Eventually(t, 20*time.Second, func() bool {
			if st, _ := c1.dig(t, "c2"); st == "NXDOMAIN" && nameGone == 0 {
				nameGone = time.Since(start)
			}
			if flowsGone == 0 && !strings.Contains(a.node.Ofctl(t, "dump-flows", "br-int"), "arp_tpa="+c2.ip.String()) {
				flowsGone = time.Since(start)
			}
			return nameGone > 0 && flowsGone > 0
		}, "c2's name or A's flows to it never went")
		t.Logf("c2 detached on B: NXDOMAIN from c1 on A after %v, A's flows to it gone after %v",
			nameGone.Round(time.Millisecond), flowsGone.Round(time.Millisecond))
		c1.wants(t, "its address has no name", "NXDOMAIN", nil, "-x", c2.ip.String())
	})
	t.Run("host killed", func(t *testing.T) {
		c1.wants(t, "before", "NOERROR", ip(w2), "web2")
		start := time.Now()
		b.agent.Stop(syscall.SIGKILL)
		c1.until(t, 20*time.Second, "NXDOMAIN", nil, "web2")
		r1.until(t, 5*time.Second, "NXDOMAIN", nil, "r2")
		t.Logf("agent B SIGKILLed: its names gone from c1 on A after %v (lease TTL %v)", time.Since(start).Round(time.Millisecond), dnTTL)
		c1.wants(t, "A's own names stay", "NOERROR", ip(w1), "web")
	})
}

// dnPort is the OVS port attach made for c on host h.
func dnPort(t *testing.T, h *dnHost, c dnCtr) string {
	t.Helper()
	out := h.node.Vsctl(t, "--bare", "--columns=name", "find", "interface", fmt.Sprintf("external_ids:ofctl-agent.ip=%s", c.ip))
	return strings.TrimSpace(out)
}

// TestDNSStatic: with the static cluster file hosts exchange no endpoint
// records, so each answers for its own containers only (docs/dns.md): a
// name set on ca (host ha) is answered by ha's resolver, cb's (host hb)
// by hb's and not by ha's, where it is NXDOMAIN.
func TestDNSStatic(t *testing.T) {
	testbed.RequireTools(t, "dig", "ethtool")
	tp := agSetup(t)
	for _, c := range []*testbed.Container{tp.ca, tp.cb} { // as attach does on a netdev bridge: UDP needs it too
		c.Exec(t, "ethtool", "-K", c.IfName, "tx", "off")
	}
	tp.a.Vsctl(t, "set", "interface", tp.ca.HostIf, "external_ids:ofctl-agent.name=ca")
	tp.b.Vsctl(t, "set", "interface", tp.cb.HostIf, "external_ids:ofctl-agent.name=cb")
	ca := dnCtr{ns: string(tp.ca.NS), name: "ca", network: "blue", host: &dnHost{gw: map[string]string{"blue": "10.100.1.1"}}}
	cb := dnCtr{ns: string(tp.cb.NS), name: "cb", network: "blue", host: &dnHost{gw: map[string]string{"blue": "10.100.2.1"}}}
	ca.until(t, 20*time.Second, "NOERROR", []string{"10.100.1.10"}, "ca")
	cb.until(t, 20*time.Second, "NOERROR", []string{"10.100.2.10"}, "cb.blue.ofctl.internal")
	ca.wants(t, "another host's name in static mode", "NXDOMAIN", nil, "cb")
	cb.wants(t, "another host's name in static mode", "NXDOMAIN", nil, "ca")
	ca.wants(t, "PTR of a local address", "NOERROR", []string{"ca.blue.ofctl.internal."}, "-x", "10.100.1.10")
}
