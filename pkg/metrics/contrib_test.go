package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	dashboardFile  = "../../contrib/grafana/ofctl-agent.json"
	promConfigFile = "../../contrib/prometheus/prometheus.yml"
)

// metricRef is a name the dashboard may query: the agent's own, or the Go
// and process collectors' the agent registers.
var metricRef = regexp.MustCompile(`\b(?:ofctl_agent|process|go)_[a-zA-Z0-9_:]+`)

// The dashboard's expressions reference only metrics the agent exports, so
// renaming a metric without updating the dashboard fails here.
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	collectQueries(dash, &exprs)
	if len(exprs) < 20 {
		t.Fatalf("found %d queries in the dashboard, expected its ~30 panels' targets", len(exprs))
	}
	exported := exportedSeriesNames(t)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricRef.FindAllString(e, -1) {
			used[name] = true
			if !exported[name] {
				t.Errorf("dashboard query %q uses %s, which the agent does not export", e, name)
			}
		}
	}
	// Every agent metric family should be on the dashboard somewhere.
	for name := range exported {
		if strings.HasPrefix(name, ns+"_") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") &&
			!used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

// collectQueries gathers every "expr" and templating "query" string.
func collectQueries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query") {
				*out = append(*out, s)
				continue
			}
			collectQueries(x, out)
		}
	case []any:
		for _, x := range v {
			collectQueries(x, out)
		}
	}
}

// exportedSeriesNames are the series names the agent's registry exposes
// (histograms: _bucket, _sum, _count).
func exportedSeriesNames(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	// The daemon registers the NAT collector in Extra (cmd/ofctl-agent).
	nat := prometheus.NewRegistry()
	nat.MustRegister(NewNATCollector(fakeNAT{counters: natCounters()}))
	natFamilies, err := nat.Gather()
	if err != nil {
		t.Fatal(err)
	}
	natFamilies = append(natFamilies, resolverFamilies(t)...) // contrib_dns_test.go
	for _, mf := range append(parse(t, exposition(t, testHandler(t))), natFamilies...) {
		name := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

func TestPrometheusConfigValid(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not on PATH (apt-get install prometheus; scripts/setup-host.sh)")
		}
		t.Skip("promtool not on PATH")
	}
	if out, err := exec.Command(promtool, "check", "config", "--syntax-only", promConfigFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", promConfigFile, err, out)
	}
}
