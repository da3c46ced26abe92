package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

const mxNS = "ofctl_agent_"

// The metrics e2e tests run the real agent binary on two nodes (agSetup)
// plus a second container on node a, and read /metrics next to ovs-ofctl.
func TestMetricsE2E(t *testing.T) {
	tp := agSetup(t)
	cc := mxContainer(t, tp.a, "cc", "10.100.1.11/16", "cid-cc")
	for _, c := range []*testbed.Container{tp.ca, tp.cb, cc} {
		mxQuiet(t, c)
	}
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(cc.Addr.Addr(), 1); return ok },
		"ca never reached cc")

	t.Run("port counters follow ovs-ofctl dump-ports", func(t *testing.T) {
		const n = 20
		beforeA, beforeB := mxPortCounters(t, tp.pa, tp.ca), mxPortCounters(t, tp.pb, tp.cb)
		if ok, out := tp.ca.Ping(tp.cb.Addr.Addr(), n); !ok {
			t.Fatalf("ping ca -> cb: %s", out)
		}
		afterA, afterB := mxPortCounters(t, tp.pa, tp.ca), mxPortCounters(t, tp.pb, tp.cb)
		for _, d := range []struct {
			who           string
			before, after map[string]float64
		}{{"ca", beforeA, afterA}, {"cb", beforeB, afterB}} {
			for _, dir := range []string{"receive", "transmit"} {
				t.Logf("%s's port: %s packets +%v", d.who, dir, d.after[dir+"_packets"]-d.before[dir+"_packets"])
				if grew := d.after[dir+"_packets"] - d.before[dir+"_packets"]; grew < n {
					t.Errorf("%s's port: %s packets grew by %v over a ping of %d", d.who, dir, grew, n)
				}
				if grew := d.after[dir+"_bytes"] - d.before[dir+"_bytes"]; grew < n*84 {
					t.Errorf("%s's port: %s bytes grew by %v over %d pings of 84 bytes", d.who, dir, grew, n)
				}
			}
		}
		s := mxFresh(t, tp.pa, "ports", time.Now())
		labels := `{container="cid-cc",ip="10.100.1.11",network="blue",ofport="` + mxOFPort(t, cc) + `",port="vcc",role="endpoint"}`
		if _, ok := s[mxNS+"port_receive_packets_total"+labels]; !ok {
			t.Errorf("no port_receive_packets_total%s in:\n%s", labels, mxGrep(s, "port_receive_packets"))
		}
		local := `{container="",ip="",network="",ofport="LOCAL",port="br-int",role=""}`
		if _, ok := s[mxNS+"port_transmit_packets_total"+local]; !ok {
			t.Errorf("no counters for LOCAL in:\n%s", mxGrep(s, "port_transmit_packets"))
		}
		gw := false // the gateway port, labelled as one
		for k := range s {
			gw = gw || strings.HasPrefix(k, mxNS+"port_receive_packets_total{container=\"\",ip=\"10.100.1.1\",network=\"blue\",ofport=") &&
				strings.HasSuffix(k, `,port="ofgw-blue",role="gateway"}`)
		}
		if !gw {
			t.Errorf("no gateway port counters with role=\"gateway\" in:\n%s", mxGrep(s, "port_receive_packets"))
		}
	})

	t.Run("spoofed packets move the sender's spoof-guard counter only", func(t *testing.T) {
		const n = 10
		forged := "10.100.1.99"
		tp.ca.Exec(t, "ip", "addr", "add", forged+"/16", "dev", "eth0")
		// A permanent neighbour: the forged packets need no ARP.
		tp.ca.Exec(t, "ip", "neigh", "replace", tp.cb.Addr.Addr().String(), "lladdr",
			arp.DerivedMAC(tp.cb.Addr.Addr()).String(), "dev", "eth0", "nud", "permanent")
		ports := []struct {
			p *testbed.Agent
			c *testbed.Container
		}{{tp.pa, tp.ca}, {tp.pa, cc}, {tp.pb, tp.cb}}
		before := make([]float64, len(ports))
		for i, x := range ports {
			before[i] = mxSpoofDrops(t, x.p, x.c)
		}
		out, _ := tp.ca.NS.Exec("ping", "-n", "-q", "-c", strconv.Itoa(n), "-i", "0.05", "-W", "1", "-I", forged, tp.cb.Addr.Addr().String())
		if !strings.Contains(out, "0 received") {
			t.Fatalf("a forged ping got answers:\n%s", out)
		}
		for i, x := range ports {
			grew := mxSpoofDrops(t, x.p, x.c) - before[i]
			t.Logf("%s: spoof drops +%v", x.c.HostIf, grew)
			switch {
			case i == 0 && grew < n:
				t.Errorf("sender %s: spoof drops grew by %v over %d forged pings", x.c.HostIf, grew, n)
			case i > 0 && grew != 0:
				t.Errorf("bystander %s: spoof drops grew by %v", x.c.HostIf, grew)
			}
		}
		// The counter is the drop flow's n_packets (ovs-ofctl as observer).
		got := mxSpoofDrops(t, tp.pa, tp.ca)
		if want := mxFlowPackets(t, tp.a, 1, "priority=100,in_port="+mxOFPort(t, tp.ca)+" actions=drop"); got != want {
			t.Errorf("spoof drops %v, drop flow n_packets %v", got, want)
		}
	})

	t.Run("table flows and miss drops match ovs-ofctl", func(t *testing.T) {
		s := mxFresh(t, tp.pa, "tables", time.Now())
		for id, name := range []string{"classifier", "spoof_guard", "arp_responder", "tunnel_ingress", "tunnel_network", "l2_forward", "tunnel_egress"} {
			agg := tp.a.Ofctl(t, "dump-aggregate", "br-int", fmt.Sprintf("table=%d", id))
			if got, want := s[mxNS+`table_flows{table="`+name+`"}`], mxField(t, agg, "flow_count"); got != want || want == 0 {
				t.Errorf("table %s: %v flows exported, ovs-ofctl counts %v", name, got, want)
			}
		}
		if got, want := s[mxNS+`table_miss_drops_packets_total{table="spoof_guard"}`], mxFlowPackets(t, tp.a, 1, "priority=0 actions=drop"); got != want {
			t.Errorf("spoof_guard miss drops %v, miss flow n_packets %v", got, want)
		}
	})

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool not on PATH (scripts/setup-host.sh installs Debian's prometheus)")
			}
			t.Skip("promtool not on PATH") // only outside CI: see above
		}
		text := mxGet(t, tp.pa.Listen, "/metrics", "", "")
		for _, m := range []string{"scrape_collector_success", "scrape_collector_age_seconds", "sync_duration_seconds_bucket", "spoof_drops_packets_total", "port_receive_bytes_total"} {
			if !strings.Contains(text, mxNS+m) {
				t.Errorf("/metrics lacks %s%s", mxNS, m)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

// mxContainer is agContainer with a container_id on the port.
func mxContainer(t *testing.T, n *testbed.Node, name, ip, id string) *testbed.Container {
	addr := netip.MustParsePrefix(ip)
	c := n.AddContainer(t, name, testbed.ContainerOpts{Addr: addr, MAC: arp.DerivedMAC(addr.Addr())})
	c.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: addr.Addr().String(),
		endpoint.KeyContainerID: id})
	return c
}

// mxQuiet stops IPv6 chatter (router solicitations, MLD) on both ends of
// a container's veth, so only the test's packets move the counters.
func mxQuiet(t *testing.T, c *testbed.Container) {
	c.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	c.Node.Exec(t, "sysctl", "-qw", "net.ipv6.conf."+c.HostIf+".disable_ipv6=1")
}

// mxGet fetches path from an agent (basic auth when user is set).
func mxGet(t *testing.T, listen, path, user, password string) string {
	t.Helper()
	code, body := mxRequest(t, listen, path, user, password)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", path, code, body)
	}
	return body
}

func mxRequest(t *testing.T, listen, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+listen+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mxScrape reads /metrics into name{sorted labels} -> value (counters and
// gauges).
func mxScrape(t *testing.T, p *testbed.Agent, user, password string) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(mxGet(t, p.Listen, "/metrics", user, password)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(pairs)
			k := name
			if len(pairs) > 0 {
				k += "{" + strings.Join(pairs, ",") + "}"
			}
			out[k] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// mxMaxAge is the agent's stated bound on the age of the Open vSwitch
// values it serves (metrics.DefaultMaxAge).
const mxMaxAge = 5 * time.Second

// mxFresh scrapes p until collector's values were read from Open vSwitch
// after since (the exported age says when the read started) and returns
// that scrape. The agent reads in the background while it is scraped, so
// this takes at most about mxMaxAge; longer fails the test.
func mxFresh(t *testing.T, p *testbed.Agent, collector string, since time.Time) map[string]float64 {
	t.Helper()
	ageKey := mxNS + `scrape_collector_age_seconds{collector="` + collector + `"}`
	okKey := mxNS + `scrape_collector_success{collector="` + collector + `"}`
	for {
		asked := time.Now()
		s := mxScrape(t, p, "", "")
		age, ok := s[ageKey]
		if !ok || age < 0 || age > mxMaxAge.Seconds() {
			t.Fatalf("%s = %v (exported %v): want an age within the stated %v", ageKey, age, ok, mxMaxAge)
		}
		// The read started age before the agent answered, which is after asked.
		if s[okKey] == 1 && !asked.Add(-time.Duration(age*float64(time.Second))).Before(since) {
			return s
		}
		if waited := time.Since(since); waited > mxMaxAge+2*time.Second {
			t.Fatalf("%s: no values read after %v within %v (age %vs, success %v)", collector, since.Format(time.StampMilli), waited, age, s[okKey])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mxGrep lists the samples whose key contains sub (for failure messages).
func mxGrep(s map[string]float64, sub string) string {
	var out []string
	for k, v := range s {
		if strings.Contains(k, sub) {
			out = append(out, fmt.Sprintf("%s %v", k, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// mxPortSample returns the value of the metric for c's port, by port label.
func mxPortSample(s map[string]float64, metric, port string) (float64, bool) {
	for k, v := range s {
		if strings.HasPrefix(k, mxNS+metric+"{") && strings.Contains(k, `port="`+port+`"`) {
			return v, true
		}
	}
	return 0, false
}

// mxSpoofDrops is c's spoof-guard drop counter, read from Open vSwitch
// after now.
func mxSpoofDrops(t *testing.T, p *testbed.Agent, c *testbed.Container) float64 {
	t.Helper()
	v, ok := mxPortSample(mxFresh(t, p, "spoof_guard", time.Now()), "spoof_drops_packets_total", c.HostIf)
	if !ok {
		t.Fatalf("no spoof_drops_packets_total for %s", c.HostIf)
	}
	return v
}

var mxDumpPort = regexp.MustCompile(`(rx|tx) pkts=(\d+), bytes=(\d+), drop=(\d+|\?), errs=(\d+|\?)`)

// mxPortCounters reads c's port counters from the agent and from
// ovs-ofctl dump-ports in quick succession, until two agent reads around
// one ovs-ofctl read agree (no packet in between), and checks that they
// are equal. The agent serves values it read from Open vSwitch in the
// background, at most mxMaxAge old: each agent read here waits for values
// read after the moment it brackets (mxFresh). Keys: receive_packets,
// transmit_bytes, ...
func mxPortCounters(t *testing.T, p *testbed.Agent, c *testbed.Container) map[string]float64 {
	t.Helper()
	for attempt := 0; attempt < 10; attempt++ {
		first := mxAgentPort(t, p, c.HostIf, time.Now())
		ofctl := mxOfctlPort(t, c.Node, c.HostIf)
		if second := mxAgentPort(t, p, c.HostIf, time.Now()); !maps2Equal(first, second) {
			continue // traffic between the reads
		}
		if !maps2Equal(first, ofctl) {
			t.Fatalf("port %s: agent %v, ovs-ofctl dump-ports %v", c.HostIf, first, ofctl)
		}
		return first
	}
	t.Fatalf("port %s never quiet enough to compare", c.HostIf)
	return nil
}

// mxAgentPort is port's counters as the agent exports them, read from
// Open vSwitch after since.
func mxAgentPort(t *testing.T, p *testbed.Agent, port string, since time.Time) map[string]float64 {
	t.Helper()
	s := mxFresh(t, p, "ports", since)
	out := map[string]float64{}
	for _, dir := range []string{"receive", "transmit"} {
		for _, what := range []string{"packets", "bytes", "drops", "errors"} {
			if v, ok := mxPortSample(s, "port_"+dir+"_"+what+"_total", port); ok {
				out[dir+"_"+what] = v
			}
		}
	}
	return out
}

func mxOfctlPort(t *testing.T, n *testbed.Node, port string) map[string]float64 {
	t.Helper()
	text := n.Ofctl(t, "dump-ports", "br-int", port)
	out := map[string]float64{}
	for _, m := range mxDumpPort.FindAllStringSubmatch(text, -1) {
		dir := map[string]string{"rx": "receive", "tx": "transmit"}[m[1]]
		for i, what := range []string{"packets", "bytes", "drops", "errors"} {
			if v, err := strconv.ParseFloat(m[2+i], 64); err == nil {
				out[dir+"_"+what] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("cannot parse ovs-ofctl dump-ports:\n%s", text)
	}
	return out
}

func maps2Equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// mxField reads "name=NUMBER" from ovs-ofctl output.
func mxField(t *testing.T, text, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(name + `=(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in:\n%s", name, text)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// mxFlowPackets is n_packets of the one flow of table whose dump-flows
// line ends with tail (e.g. "priority=0 actions=drop").
func mxFlowPackets(t *testing.T, n *testbed.Node, table int, tail string) float64 {
	t.Helper()
	text := n.Ofctl(t, "--no-names", "dump-flows", "br-int", fmt.Sprintf("table=%d", table))
	var found []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), " "+tail) || strings.HasSuffix(strings.TrimSpace(l), ", "+tail) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one flow ending %q in table %d, found %d:\n%s", tail, table, len(found), text)
	}
	return mxField(t, found[0], "n_packets")
}

// mxOFPort is the ofport OVS gave c's port.
func mxOFPort(t *testing.T, c *testbed.Container) string {
	return strings.TrimSpace(c.Node.Vsctl(t, "get", "interface", c.HostIf, "ofport"))
}
