package metrics

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// DefaultOVSTimeout bounds each OVS collector's requests per scrape.
const DefaultOVSTimeout = 2 * time.Second

// Switch is the OpenFlow connection the OVS collectors read at scrape time
// (*openflow.Conn).
type Switch interface {
	PortStats(ctx context.Context, port uint32) ([]openflow.PortStats, error)
	PortDesc(ctx context.Context) ([]openflow.Port, error)
	FlowStats(ctx context.Context, f openflow.FlowStatsFilter) ([]openflow.FlowStats, error)
}

// PortLabels are the endpoint labels of an OVS port; empty for ports that
// are not endpoints (the tunnel, LOCAL).
type PortLabels struct {
	Network   string
	IP        string
	Container string // external_ids:container_id of the interface
}

// OVSConfig wires an OVS reader.
type OVSConfig struct {
	// Switch returns the current OpenFlow connection, or nil.
	Switch func() Switch
	// Ports returns the endpoint labels by port name (nil: none). It is
	// called at most once per scrape.
	Ports   func() map[string]PortLabels
	Timeout time.Duration // per collector and scrape; default DefaultOVSTimeout
	Logger  *slog.Logger
}

// errNoSwitch is a collector's error while the agent has no connection.
var errNoSwitch = errors.New("no openflow connection")

// OVS reads counters from Open vSwitch on every scrape, with two
// collectors that run concurrently, each bounded by the timeout: "ports"
// (one port-stats request; port names cached) and "flows" (one dump of
// every flow: spoof-guard drops per port, flows and miss drops per table).
// A collector that fails exports nothing but
// ofctl_agent_scrape_collector_success 0; the scrape goes on.
type OVS struct {
	cfg   OVSConfig
	names *portNames
}

// NewOVS returns a reader of Open vSwitch through cfg.Switch.
func NewOVS(cfg OVSConfig) *OVS {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultOVSTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ports == nil {
		cfg.Ports = func() map[string]PortLabels { return nil }
	}
	return &OVS{cfg: cfg, names: &portNames{}}
}

// Collectors are the names of the OVS collectors, for Scrape's selection
// (and /metrics?collect[]=NAME).
var Collectors = []string{"ports", "flows"}

// OVSScrape is the result of one scrape, ready to be written.
type OVSScrape struct {
	ports portsResult
	flows flowsResult
	runs  []collectorRun // the collectors that ran
}

// collectorRun is how one collector did.
type collectorRun struct {
	name string
	took time.Duration
	err  error
}

// scrape is what the collectors of one scrape share.
type scrape struct {
	sw     Switch
	labels func() map[string]PortLabels
}

// Scrape reads Open vSwitch now with the collectors named in only (all
// when only is empty); unknown names are ignored.
func (o *OVS) Scrape(only ...string) *OVSScrape {
	sc := &scrape{sw: o.cfg.Switch(), labels: sync.OnceValue(o.cfg.Ports)}
	res := &OVSScrape{}
	collect := map[string]func(context.Context, *scrape) error{
		"ports": func(ctx context.Context, sc *scrape) (err error) { res.ports, err = o.readPorts(ctx, sc); return err },
		"flows": func(ctx context.Context, sc *scrape) (err error) { res.flows, err = o.readFlows(ctx, sc); return err },
	}
	for _, name := range Collectors {
		if len(only) == 0 || slices.Contains(only, name) {
			res.runs = append(res.runs, collectorRun{name: name})
		}
	}
	var wg sync.WaitGroup
	for i := range res.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := &res.runs[i]
			start := time.Now()
			run.err = errNoSwitch
			if sc.sw != nil {
				ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout)
				run.err = collect[run.name](ctx, sc)
				cancel()
			}
			run.took = time.Since(start)
			if run.err != nil {
				o.cfg.Logger.Debug("metrics: collector failed", "collector", run.name, "err", run.err)
			}
		}()
	}
	wg.Wait()
	return res
}

var (
	famDuration = family{ns + "_scrape_collector_duration_seconds", "Time an OVS collector took in this scrape.", "gauge"}
	famSuccess  = family{ns + "_scrape_collector_success",
		"1 when an OVS collector read Open vSwitch in this scrape, 0 when it failed (no connection, timeout, error).", "gauge"}
)

// WriteText writes the scrape's families in the text format; families of
// a failed collector are left out.
func (s *OVSScrape) WriteText(w *bufio.Writer) error {
	t := &textWriter{w: w}
	t.header(famDuration)
	for _, r := range s.runs {
		t.sample(famDuration.name, labelSet("collector", r.name), r.took.Seconds())
	}
	t.header(famSuccess)
	for _, r := range s.runs {
		t.sample(famSuccess.name, labelSet("collector", r.name), b2f(r.err == nil))
	}
	for _, r := range s.runs {
		switch {
		case r.err != nil:
		case r.name == "ports":
			s.ports.write(t)
		case r.name == "flows":
			s.flows.write(t)
		}
	}
	return t.err
}

// portLabelValues renders the label set of ofport no, or false when the
// port has no known name.
func portLabelValues(names map[uint32]string, labels map[string]PortLabels, no uint32) (string, bool) {
	name, ok := names[no]
	if !ok {
		return "", false
	}
	l := labels[name]
	return labelSet("port", name, "ofport", ofportLabel(no), "network", l.Network, "ip", l.IP, "container", l.Container), true
}
