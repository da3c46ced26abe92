package bench

import (
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The scrape benchmark runs the real agent binary on a test-bed node whose
// br-int holds N dummy ports (ovs-vswitchd --enable-dummy), each a local
// endpoint (network, IP and container_id in external_ids: the full label
// set, five flows each). The agent serves Open vSwitch's values at most 5 s
// old, read in the background while it is scraped (port stats, table
// stats, the endpoints' drop flows), on an OpenFlow connection of its own.
// The cases: everything; without the spoof_guard collector; the port
// counters alone (collect[]). Each case also reports the age of the values
// served, how long the reads of Open vSwitch behind them took, and the CPU
// the background reads cost while nobody scrapes.
const (
	scScrapes   = 50   // timed scrapes per case
	scVsctlMany = 1000 // ports per ovs-vsctl call
	// scBigBudget is what the 10k case needs: ovs-vswitchd adds a dummy
	// port in time linear in the ports it has, so 10k ports take minutes.
	scBigBudget = 30 * time.Minute
)

var scProcessStart = time.Now()

// BenchmarkScrape measures /metrics at 1k and 10k ports: latency p50/p99
// over scScrapes sequential scrapes (gzip, as Prometheus asks), the agent
// process's CPU per scrape (utime+stime of the running child, as
// getrusage reports after exit), and the collectors' own durations. The
// drift check is set to 1h so the agent is idle between scrapes. The 10k
// case runs only with -timeout of at least 30m (make bench gives 60m).
func BenchmarkScrape(b *testing.B) {
	testbed.Require(b)
	node := testbed.NewNode(b, "scr")
	pid, listen := scStartAgent(b, node)
	have := 0
	for _, n := range []int{1_000, 10_000} {
		if n > 1_000 && !scHaveTime(scBigBudget) {
			b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
				b.Skipf("needs -timeout %v or more: creating 10k ports in the test bed takes ~15 min", scBigBudget)
			})
			continue
		}
		for ; have < n; have += scVsctlMany {
			scAddPorts(b, node, have, min(have+scVsctlMany, n))
		}
		scWaitFlows(b, node, n, n)
		scReference(b, node)
		// Fewest collectors first: the agent goes on reading every collector
		// scraped in the last 5 minutes, in the background.
		for _, c := range []struct{ name, path string }{
			{"ports-only", "/metrics?collect[]=agent&collect[]=ports"},
			{"no-spoof_guard", "/metrics?collect[]=agent&collect[]=ports&collect[]=tables"},
			{"all", "/metrics"},
		} {
			b.Run(fmt.Sprintf("ports=%d/%s", n, c.name), func(b *testing.B) {
				scMeasure(b, pids{agent: pid, vswitchd: node.VswitchdPid()}, listen, c.path, n, n)
			})
		}
	}
}

// scHaveTime reports whether the test binary's -timeout leaves d.
func scHaveTime(d time.Duration) bool {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return true
	}
	timeout, err := time.ParseDuration(f.Value.String())
	return err != nil || timeout == 0 || timeout-time.Since(scProcessStart) >= d
}

// pids are the processes whose CPU time is measured.
type pids struct{ agent, vswitchd int }

// scIdle is how long the background reads' cost is measured without scrapes.
const scIdle = 10 * time.Second

// scMeasure times scScrapes scrapes of path with ports ports, endpoints of
// them endpoints, then measures the CPU the background reads cost while
// nobody scrapes (the agent keeps reading for minutes after a scrape).
func scMeasure(b *testing.B, p pids, listen, path string, ports, endpoints int) {
	for range 3 { // warm up: port-name cache, connections, first reads
		scGet(b, listen, path)
	}
	for i := 0; i < b.N; i++ {
		cpu0, ovs0 := procCPU(b, p.agent), procCPU(b, p.vswitchd)
		lat := make([]time.Duration, scScrapes)
		read, age := map[string][]time.Duration{}, map[string][]time.Duration{}
		var size int
		start := time.Now()
		for i := range lat {
			t0 := time.Now()
			body := scGet(b, listen, path)
			lat[i] = time.Since(t0)
			size = len(body)
			scCollectorValues(b, body, scDuration, read)
			scCollectorValues(b, body, scAge, age)
			if i == 0 {
				scCheck(b, body, path, ports, endpoints)
			}
		}
		wall := time.Since(start)
		cpu, ovs := (procCPU(b, p.agent)-cpu0)/scScrapes, procCPU(b, p.vswitchd)-ovs0
		idleAgent, idleOVS := scIdleCPU(b, p)
		p50, p99 := quantile(lat, 0.50), quantile(lat, 0.99)
		b.ReportMetric(float64(p50)/1e6, "p50-ms")
		b.ReportMetric(float64(p99)/1e6, "p99-ms")
		b.ReportMetric(float64(cpu)/1e6, "cpu-ms/scrape")
		b.ReportMetric(float64(size)/1e6, "MB/scrape")
		b.ReportMetric(0, "ns/op")
		msg := fmt.Sprintf("%d ports (%d endpoints) %s: p50 %v p99 %v, agent CPU %v per scrape, vswitchd CPU %.0f%% while scraped, %.2f MB of text",
			ports, endpoints, path, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), cpu,
			100*ovs.Seconds()/wall.Seconds(), float64(size)/1e6)
		for _, name := range []string{"ports", "tables", "spoof_guard"} {
			if ds := read[name]; len(ds) > 0 {
				msg += fmt.Sprintf("; %s: read p50 %v max %v, age p50 %v max %v", name, quantile(ds, 0.5).Round(100*time.Microsecond),
					quantile(ds, 1).Round(100*time.Microsecond), quantile(age[name], 0.5).Round(10*time.Millisecond),
					quantile(age[name], 1).Round(10*time.Millisecond))
			}
		}
		b.Log(msg)
		b.Logf("background reads without scrapes: agent CPU %.1f%%, vswitchd CPU %.1f%% (over %v)", 100*idleAgent, 100*idleOVS, scIdle)
	}
}

// scIdleCPU is the share of a CPU the agent and ovs-vswitchd use over
// scIdle without scrapes.
func scIdleCPU(b *testing.B, p pids) (agent, ovs float64) {
	a0, o0 := procCPU(b, p.agent), procCPU(b, p.vswitchd)
	time.Sleep(scIdle)
	return (procCPU(b, p.agent) - a0).Seconds() / scIdle.Seconds(), (procCPU(b, p.vswitchd) - o0).Seconds() / scIdle.Seconds()
}

var (
	scDuration = regexp.MustCompile(`(?m)^ofctl_agent_scrape_collector_duration_seconds\{collector="(\w+)"\} (\S+)$`)
	scAge      = regexp.MustCompile(`(?m)^ofctl_agent_scrape_collector_age_seconds\{collector="(\w+)"\} (\S+)$`)
)

// scCollectorValues appends a per-collector gauge in seconds (re) of a
// scrape to out.
func scCollectorValues(b *testing.B, body string, re *regexp.Regexp, out map[string][]time.Duration) {
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		s, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			b.Fatalf("collector value %q: %v", m[2], err)
		}
		out[m[1]] = append(out[m[1]], time.Duration(s*float64(time.Second)))
	}
}

// scCheck makes sure a scrape is complete: the collectors that ran
// succeeded and every port and endpoint has its series.
func scCheck(b *testing.B, body, path string, ports, endpoints int) {
	b.Helper()
	colls := []string{"ports", "tables", "spoof_guard"}
	if strings.Contains(path, "collect[]=") {
		colls = nil
		for _, c := range []string{"ports", "tables", "spoof_guard"} {
			if strings.Contains(path, "collect[]="+c) {
				colls = append(colls, c)
			}
		}
		if !strings.Contains(path, "collect[]=spoof_guard") {
			endpoints = 0 // no spoof-guard series
		}
	}
	for _, c := range colls {
		if !strings.Contains(body, `ofctl_agent_scrape_collector_success{collector="`+c+`"} 1`) {
			b.Fatalf("collector %s failed in the scrape", c)
		}
	}
	if n := strings.Count(body, "\nofctl_agent_port_receive_packets_total{"); n < ports {
		b.Fatalf("%d ports with counters, want at least %d", n, ports)
	}
	if n := strings.Count(body, "\nofctl_agent_spoof_drops_packets_total{"); n != endpoints {
		b.Fatalf("%d spoof-guard drop series, want %d", n, endpoints)
	}
}

// scReference logs how long ovs-ofctl takes to read the same counters:
// Open vSwitch's own share of a scrape.
func scReference(b *testing.B, node *testbed.Node) {
	for _, args := range [][]string{{"dump-ports", "br-int"}, {"dump-flows", "br-int"}} {
		start := time.Now()
		out := node.Ofctl(b, args...)
		b.Logf("reference: ovs-ofctl %s: %v (%d lines)", args[0], time.Since(start).Round(time.Millisecond), strings.Count(out, "\n"))
	}
}
