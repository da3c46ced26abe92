package metrics

import (
	"bytes"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// fakeNAT is a NATSource with fixed values.
type fakeNAT struct {
	counters netfilter.Counters
	err      error
}

func (f fakeNAT) Counters() (netfilter.Counters, error) { return f.counters, f.err }
func (f fakeNAT) Status() netfilter.Status {
	return netfilter.Status{InSync: true, Repairs: 2, Failures: 1}
}

func natCounters() netfilter.Counters {
	drops := map[string]netfilter.Counter{"spoofed": {}, "blocked": {Packets: 3, Bytes: 252}, "unsolicited": {Packets: 1, Bytes: 60}}
	return netfilter.Counters{
		Networks: []netfilter.NetworkCounters{{Network: "blue", Masqueraded: 4,
			Egress: netfilter.Counter{Packets: 10, Bytes: 900}, Ingress: netfilter.Counter{Packets: 12, Bytes: 15000}, Dropped: drops}},
		Publishes: []netfilter.PublishCounters{{
			Publish:     netfilter.Publish{Network: "blue", Endpoint: "c1", Proto: netfilter.TCP, HostPort: 8080, IP: netip.MustParseAddr("10.100.1.5"), Port: 80},
			Connections: 2, Traffic: netfilter.Counter{Packets: 20, Bytes: 3000}}},
	}
}

func TestNATCollector(t *testing.T) {
	want := `
# HELP ofctl_agent_nat_masquerade_connections_total Connections masqueraded to the host's address, by network (the masquerade rule sees their first packet).
# TYPE ofctl_agent_nat_masquerade_connections_total counter
ofctl_agent_nat_masquerade_connections_total{network="blue"} 4
# HELP ofctl_agent_nat_outside_bytes_total Bytes forwarded between a network and the outside world through its gateway, by direction.
# TYPE ofctl_agent_nat_outside_bytes_total counter
ofctl_agent_nat_outside_bytes_total{direction="egress",network="blue"} 900
ofctl_agent_nat_outside_bytes_total{direction="ingress",network="blue"} 15000
# HELP ofctl_agent_nat_dropped_packets_total Packets the gateway rules dropped, by network and reason (spoofed: source outside the subnet; blocked: to a blocked address; unsolicited: a new connection towards the network, not to a published port).
# TYPE ofctl_agent_nat_dropped_packets_total counter
ofctl_agent_nat_dropped_packets_total{network="blue",reason="blocked"} 3
ofctl_agent_nat_dropped_packets_total{network="blue",reason="spoofed"} 0
ofctl_agent_nat_dropped_packets_total{network="blue",reason="unsolicited"} 1
# HELP ofctl_agent_nat_published_packets_total Packets of the connections to a published port, both ways (host ports of one container port share them).
# TYPE ofctl_agent_nat_published_packets_total counter
ofctl_agent_nat_published_packets_total{endpoint="c1",host_port="8080",network="blue",protocol="tcp"} 20
# HELP ofctl_agent_nat_published_connections_total Connections to a published port (from outside, the host or containers).
# TYPE ofctl_agent_nat_published_connections_total counter
ofctl_agent_nat_published_connections_total{endpoint="c1",host_port="8080",network="blue",protocol="tcp"} 2
# HELP ofctl_agent_nat_repairs_total Changes made by others to the agent's packet-filter rules that the agent undid.
# TYPE ofctl_agent_nat_repairs_total counter
ofctl_agent_nat_repairs_total 2
# HELP ofctl_agent_nat_scrape_success 1 when this scrape read the packet-filter counters from the kernel.
# TYPE ofctl_agent_nat_scrape_success gauge
ofctl_agent_nat_scrape_success 1
`
	c := NewNATCollector(fakeNAT{counters: natCounters()})
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ofctl_agent_nat_masquerade_connections_total",
		"ofctl_agent_nat_outside_bytes_total", "ofctl_agent_nat_dropped_packets_total", "ofctl_agent_nat_published_packets_total",
		"ofctl_agent_nat_published_connections_total", "ofctl_agent_nat_repairs_total", "ofctl_agent_nat_scrape_success"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(gatherOf(c))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	promtoolCheck(t, c)
}

// A failed read exports the status and scrape_success 0, no counters.
func TestNATCollectorReadFailure(t *testing.T) {
	c := NewNATCollector(fakeNAT{err: errors.New("netlink: permission denied")})
	if n := testutil.CollectAndCount(c); n != 5 {
		t.Errorf("%d series after a failed read, want the 5 of status and scrape", n)
	}
	want := `
# HELP ofctl_agent_nat_scrape_success 1 when this scrape read the packet-filter counters from the kernel.
# TYPE ofctl_agent_nat_scrape_success gauge
ofctl_agent_nat_scrape_success 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "ofctl_agent_nat_scrape_success"); err != nil {
		t.Error(err)
	}
}

// promtoolCheck runs `promtool check metrics` on c's exposition.
func promtoolCheck(t *testing.T, c *NATCollector) {
	t.Helper()
	mfs, err := gatherOf(c).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	testbed.RequireTools(t, "promtool")
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = &text
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
