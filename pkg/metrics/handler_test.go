package metrics

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

func testStatus() agent.Status {
	return agent.Status{Ready: true, OVSDB: ovsdb.Stats{Connected: true, Reconnects: 2},
		OpenFlow:  openflow.State{Connected: true, Reconnects: 1, Failures: 3},
		Reconcile: reconcile.Stats{FlowMods: 42, Bundles: 5, Failures: 1, Syncs: 9, LastSync: 3 * time.Millisecond, DesiredFlows: 17},
		Rejects:   map[string]uint64{"interface": 2, "novel": 1}, Repairs: 4, Endpoints: 2,
		APIRequests: map[agent.APIRequest]uint64{{Call: "allocate", Result: "ok"}: 3, {Call: "allocate", Result: "exhausted"}: 1},
		Addresses:   map[string]ipam.NetworkStats{"blue": {Ports: 7, Pending: 2, Expired: 5}, "red": {}}}
}

// testHandler is the /metrics handler over a fake switch, with every
// metric family present.
func testHandler(t *testing.T) *Handler {
	t.Helper()
	f := newFakeOVS(t, testPorts(), testFlows())
	c, _ := f.dial(t)
	loop := NewLoopMetrics()
	loop.ObserveSync(reconcile.SyncResult{Duration: 20 * time.Millisecond}, nil)
	loop.ObserveApply(agent.Applied{Events: 1, Latency: 3 * time.Millisecond})
	extra := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_extra_value", Help: "An extra collector."})
	h := NewHandler(Sources{Status: testStatus, Loop: loop, Logger: quiet, Extra: []prometheus.Collector{extra},
		OVS: OVSConfig{Switch: func() Switch { return c }, Ports: testLabels}})
	t.Cleanup(h.Close)
	return h
}

// get serves one request; gzip asks for a compressed answer.
func get(t testing.TB, h http.Handler, gzipped bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if gzipped {
		req.Header.Set("Accept-Encoding", "deflate, gzip;q=0.9")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/metrics = %d: %s", rec.Code, rec.Body)
	}
	return rec
}

// exposition is the text /metrics serves.
func exposition(t testing.TB, h http.Handler) string {
	t.Helper()
	return get(t, h, false).Body.String()
}

func TestHandlerLint(t *testing.T) {
	text := exposition(t, testHandler(t))
	mfs := parse(t, text)
	problems, err := testutil.GatherAndLint(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil }))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	got := flatten(mfs)
	for _, k := range []string{key(ns + "_ready"), key(ns+"_port_receive_packets_total", port("vc1", "1", "blue", "10.100.1.10", "c1")...),
		key(ns+"_table_flows", "table", "spoof_guard"), key("go_goroutines"), key("process_cpu_seconds_total"), key("test_extra_value")} {
		if _, ok := got[k]; !ok {
			t.Errorf("/metrics lacks %s", k)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not on PATH (apt-get install prometheus; scripts/setup-host.sh)")
		}
		t.Skip("promtool not on PATH")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestHandlerCollectSelection(t *testing.T) {
	h := testHandler(t)
	req := httptest.NewRequest("GET", "/metrics?collect[]=ports", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	got := flatten(parse(t, rec.Body.String()))
	if got[key(ns+"_scrape_collector_success", "collector", "ports")] != 1 || count(got, ns+"_port_receive_packets_total") != 4 {
		t.Errorf("collect[]=ports: no port counters:\n%.1000s", rec.Body)
	}
	for _, k := range []string{key(ns+"_scrape_collector_success", "collector", "tables"), key(ns+"_table_flows", "table", "classifier"),
		key(ns+"_scrape_collector_success", "collector", "spoof_guard")} {
		if _, ok := got[k]; ok {
			t.Errorf("collect[]=ports exported %s", k)
		}
	}
	if _, ok := got[key(ns+"_ready")]; ok {
		t.Error("collect[]=ports exported the agent's own metrics")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics?collect[]=agent&collect[]=tables", nil))
	got = flatten(parse(t, rec.Body.String()))
	if _, ok := got[key(ns+"_ready")]; !ok || count(got, ns+"_port_receive_packets_total") != 0 || got[key(ns+"_table_flows", "table", "spoof_guard")] != 6 {
		t.Errorf("collect[]=agent&collect[]=tables:\n%.1500s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics?collect[]=agent", nil))
	got = flatten(parse(t, rec.Body.String()))
	if _, ok := got[key(ns+"_scrape_collector_success", "collector", "ports")]; ok || len(got) < 10 {
		t.Errorf("collect[]=agent ran OVS collectors or lost the agent's metrics:\n%.1500s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics?collect[]=ports&collect[]=bogus", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `unknown collector "bogus"`) {
		t.Errorf("collect[]=bogus = %d %q, want 400 naming it", rec.Code, rec.Body)
	}
}

func TestHandlerGzip(t *testing.T) {
	h := testHandler(t)
	rec := get(t, h, true)
	if rec.Header().Get("Content-Encoding") != "gzip" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("headers %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(parse(t, string(text))); got[key(ns+"_table_flows", "table", "classifier")] != 1 {
		t.Errorf("gzipped exposition lacks the table flows: %.500s", text)
	}
	for header, want := range map[string]bool{"gzip": true, "br, gzip": true, "gzip;q=0": false, "identity": false, "": false, "GZIP; q=0.5": true} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v", header, got)
		}
	}
}

func TestAgentCollector(t *testing.T) {
	want := `
# HELP ofctl_agent_invalid_inputs_total Inputs rejected (bad OVSDB rows, conflicts, bad cluster files, refused flows), by kind.
# TYPE ofctl_agent_invalid_inputs_total counter
ofctl_agent_invalid_inputs_total{kind="agent-api"} 0
ofctl_agent_invalid_inputs_total{kind="cluster"} 0
ofctl_agent_invalid_inputs_total{kind="conflict"} 0
ofctl_agent_invalid_inputs_total{kind="dns"} 0
ofctl_agent_invalid_inputs_total{kind="docker-plugin"} 0
ofctl_agent_invalid_inputs_total{kind="endpoint"} 0
ofctl_agent_invalid_inputs_total{kind="flow"} 0
ofctl_agent_invalid_inputs_total{kind="gateway"} 0
ofctl_agent_invalid_inputs_total{kind="interface"} 2
ofctl_agent_invalid_inputs_total{kind="nat"} 0
ofctl_agent_invalid_inputs_total{kind="novel"} 1
ofctl_agent_invalid_inputs_total{kind="publish"} 0
# HELP ofctl_agent_bundle_failures_total Bundles OVS refused (nothing was applied).
# TYPE ofctl_agent_bundle_failures_total counter
ofctl_agent_bundle_failures_total 1
# HELP ofctl_agent_openflow_reconnects_total OpenFlow connections established after the first.
# TYPE ofctl_agent_openflow_reconnects_total counter
ofctl_agent_openflow_reconnects_total 1
# HELP ofctl_agent_drift_repairs_total Flows fixed because OVS differed from the desired flows (drift).
# TYPE ofctl_agent_drift_repairs_total counter
ofctl_agent_drift_repairs_total 4
# HELP ofctl_agent_api_requests_total Requests of the agent's local API (attach, the CNI plugin), by call (status, network, allocate, release, list, unknown) and result (ok or the error code).
# TYPE ofctl_agent_api_requests_total counter
ofctl_agent_api_requests_total{call="allocate",result="exhausted"} 1
ofctl_agent_api_requests_total{call="allocate",result="ok"} 3
# HELP ofctl_agent_addresses_held Addresses of this host's allocator in use, by network and holder: port (a port on the bridge claims it) or allocation (allocated, its port not there yet).
# TYPE ofctl_agent_addresses_held gauge
ofctl_agent_addresses_held{holder="allocation",network="blue"} 2
ofctl_agent_addresses_held{holder="allocation",network="red"} 0
ofctl_agent_addresses_held{holder="port",network="blue"} 7
ofctl_agent_addresses_held{holder="port",network="red"} 0
# HELP ofctl_agent_address_allocations_expired_total Allocations dropped because no port claimed their address in time (a client died between allocation and port, and no DEL or GC released it).
# TYPE ofctl_agent_address_allocations_expired_total counter
ofctl_agent_address_allocations_expired_total{network="blue"} 5
ofctl_agent_address_allocations_expired_total{network="red"} 0
`
	err := testutil.CollectAndCompare(NewAgentCollector(testStatus), strings.NewReader(want),
		"ofctl_agent_invalid_inputs_total", "ofctl_agent_bundle_failures_total",
		"ofctl_agent_openflow_reconnects_total", "ofctl_agent_drift_repairs_total", "ofctl_agent_api_requests_total",
		"ofctl_agent_addresses_held", "ofctl_agent_address_allocations_expired_total")
	if err != nil {
		t.Error(err)
	}
}

func TestLoopMetrics(t *testing.T) {
	m := NewLoopMetrics()
	m.ObserveSync(reconcile.SyncResult{Duration: 5 * time.Millisecond}, nil)
	m.ObserveSync(reconcile.SyncResult{Duration: 7 * time.Millisecond}, nil)
	m.ObserveSync(reconcile.SyncResult{Duration: time.Second}, errors.New("dump flows: timeout"))
	m.ObserveApply(agent.Applied{Latency: 2 * time.Millisecond})
	mfs, err := gatherOf(m).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := flatten(mfs)
	want := map[string]float64{
		key(ns+"_sync_duration_seconds", "result", "ok"): 2, key(ns+"_sync_duration_seconds", "result", "error"): 1,
		key(ns + "_apply_latency_seconds"): 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s count = %v, want %v", k, got[k], v)
		}
	}
	if n := testutil.CollectAndCount(NewLoopMetrics(), ns+"_sync_duration_seconds"); n != 2 {
		t.Errorf("a fresh LoopMetrics exports %d sync series, want ok and error", n)
	}
}

func TestPortLabels(t *testing.T) {
	ifaces := []ovsdb.Interface{
		{Name: "vc1", ExternalIDs: map[string]string{"container_id": "c1"}},
		{Name: "vc2", ExternalIDs: map[string]string{"container_id": "c2"}}, // not programmed
		{Name: "gre0"},
		{Name: "vc3"}, // an endpoint without container_id
	}
	eps := []pipeline.Endpoint{
		{Port: "vc1", Network: "blue", IP: netip.MustParseAddr("10.100.1.10")},
		{Port: "vc3", Network: "red", IP: netip.MustParseAddr("10.200.1.3")},
		{Port: "ofgw-blue", Network: "blue", IP: netip.MustParseAddr("10.100.1.1"), Gateway: true},
	}
	got := portLabels(ifaces, eps)
	want := map[string]PortLabels{
		"vc1":       {Network: "blue", IP: "10.100.1.10", Container: "c1", Role: "endpoint"},
		"vc2":       {Container: "c2"},
		"vc3":       {Network: "red", IP: "10.200.1.3", Role: "endpoint"},
		"ofgw-blue": {Network: "blue", IP: "10.100.1.1", Role: "gateway"},
	}
	if len(got) != len(want) {
		t.Errorf("portLabels = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("portLabels[%s] = %+v, want %+v", k, got[k], v)
		}
	}
}

// gatherOf registers cs in a pedantic registry.
func gatherOf(cs ...prometheus.Collector) prometheus.Gatherer {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	return reg
}
