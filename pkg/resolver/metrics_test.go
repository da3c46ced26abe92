package resolver

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

func TestMetrics(t *testing.T) {
	good := startUpstream(t, "127.0.0.53", answerA("192.0.2.80"))
	dead := deadUpstream(t, "127.0.0.51")
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{dead, good.addr}, Forward: fastForward()})
	loadNames(t, s)
	ask(t, s, blueGW, blueC, "udp", question("web.", dns.TypeA))
	ask(t, s, blueGW, blueC, "udp", question("nope.", dns.TypeA))
	ask(t, s, blueGW, blueC, "tcp", question("www.example.org.", dns.TypeA))
	ask(t, s, blueGW, redC, "udp", question("web.", dns.TypeA))
	ask(t, s, redGW, redC, "udp", question("web.", dns.TypeA))

	want := `
# HELP ofctl_agent_dns_answers_total Answers sent, by kind: local, forwarded, nxdomain, refused, servfail, formerr, notimp.
# TYPE ofctl_agent_dns_answers_total counter
ofctl_agent_dns_answers_total{kind="formerr",network="blue"} 0
ofctl_agent_dns_answers_total{kind="forwarded",network="blue"} 1
ofctl_agent_dns_answers_total{kind="local",network="blue"} 1
ofctl_agent_dns_answers_total{kind="notimp",network="blue"} 0
ofctl_agent_dns_answers_total{kind="nxdomain",network="blue"} 1
ofctl_agent_dns_answers_total{kind="refused",network="blue"} 1
ofctl_agent_dns_answers_total{kind="servfail",network="blue"} 0
ofctl_agent_dns_answers_total{kind="formerr",network="red"} 0
ofctl_agent_dns_answers_total{kind="forwarded",network="red"} 0
ofctl_agent_dns_answers_total{kind="local",network="red"} 1
ofctl_agent_dns_answers_total{kind="notimp",network="red"} 0
ofctl_agent_dns_answers_total{kind="nxdomain",network="red"} 0
ofctl_agent_dns_answers_total{kind="refused",network="red"} 0
ofctl_agent_dns_answers_total{kind="servfail",network="red"} 0
# HELP ofctl_agent_dns_names Distinct names a network's resolver answers.
# TYPE ofctl_agent_dns_names gauge
ofctl_agent_dns_names{network="blue"} 2
ofctl_agent_dns_names{network="red"} 2
# HELP ofctl_agent_dns_queries_total DNS messages received on a network's resolver address (UDP and TCP).
# TYPE ofctl_agent_dns_queries_total counter
ofctl_agent_dns_queries_total{network="blue"} 4
ofctl_agent_dns_queries_total{network="red"} 1
# HELP ofctl_agent_dns_upstream_failures_total Failed attempts to forward a query to an upstream resolver, by reason: timeout, error, servfail, refused, mismatch.
# TYPE ofctl_agent_dns_upstream_failures_total counter
ofctl_agent_dns_upstream_failures_total{reason="timeout",upstream="` + dead.String() + `"} 1
`
	err := testutil.CollectAndCompare(s.Metrics(), strings.NewReader(want),
		"ofctl_agent_dns_answers_total", "ofctl_agent_dns_names", "ofctl_agent_dns_queries_total", "ofctl_agent_dns_upstream_failures_total")
	if err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(s.Metrics(), "ofctl_agent_dns_query_duration_seconds"); n != 2 {
		t.Errorf("%d latency series, want local and forwarded", n)
	}

	// promtool, as an operator's CI would run it on /metrics.
	testbed.RequireTools(t, "promtool")
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = &text
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
