package metrics

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/contiv/libOpenflow/util"

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
	Request(ctx context.Context, msg util.Message) (util.Message, error)
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

// OVS reads counters from Open vSwitch on every scrape with three
// collectors, each bounded by the timeout: "ports" (one port-stats
// request; port names cached), "tables" (flows per table by aggregate
// requests, and the miss flows' drops) and "spoof_guard" (a dump of the
// endpoints' spoof_guard flows, four per endpoint: the costly one). They
// run concurrently, but Open vSwitch answers one connection's requests in
// order. A collector that fails exports nothing but
// ofctl_agent_scrape_collector_success 0; the scrape goes on.
type OVS struct {
	cfg    OVSConfig
	names  *portNames
	labels *labelSets
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
	return &OVS{cfg: cfg, names: &portNames{}, labels: &labelSets{}}
}

// Collectors returns the names of the OVS collectors, for Scrape's
// selection (and /metrics?collect[]=NAME).
func Collectors() []string { return []string{"ports", "tables", "spoof_guard"} }

// OVSScrape is the result of one scrape, ready to be written.
type OVSScrape struct {
	ports  portsResult
	tables tablesResult
	spoof  spoofResult
	runs   []collectorRun // the collectors that ran
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
		"ports":  func(ctx context.Context, sc *scrape) (err error) { res.ports, err = o.readPorts(ctx, sc); return err },
		"tables": func(ctx context.Context, sc *scrape) (err error) { res.tables, err = o.readTables(ctx, sc); return err },
		"spoof_guard": func(ctx context.Context, sc *scrape) (err error) {
			res.spoof, err = o.readSpoofGuard(ctx, sc)
			return err
		},
	}
	for _, name := range Collectors() {
		if len(only) == 0 || slices.Contains(only, name) {
			res.runs = append(res.runs, collectorRun{name: name})
		}
	}
	var wg sync.WaitGroup
	for i := range res.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.run(&res.runs[i], sc, collect[res.runs[i].name])
		}()
	}
	wg.Wait()
	return res
}

// run runs one collector, bounded by the timeout, and records how it did.
func (o *OVS) run(run *collectorRun, sc *scrape, collect func(context.Context, *scrape) error) {
	start := time.Now()
	run.err = errNoSwitch
	if sc.sw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout)
		run.err = collect(ctx, sc)
		cancel()
	}
	run.took = time.Since(start)
	if run.err != nil {
		o.cfg.Logger.Debug("metrics: collector failed", "collector", run.name, "err", run.err)
	}
}

var (
	famDuration = family{ns + "_scrape_collector_duration_seconds", "Time an OVS collector took in this scrape.", "gauge"}
	famSuccess  = family{ns + "_scrape_collector_success",
		"1 when an OVS collector read Open vSwitch in this scrape, 0 when it failed (no connection, timeout, error).", "gauge"}
)

// WriteText writes the scrape's families in the text format; families of
// a failed collector are left out.
func (s *OVSScrape) WriteText(w *bufio.Writer) error {
	if len(s.runs) == 0 {
		return nil
	}
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
		case r.name == "tables":
			s.tables.write(t)
		case r.name == "spoof_guard":
			s.spoof.write(t)
		}
	}
	return t.err
}

// labelSets caches the rendered label set of each port: rendering 10k
// of them per scrape costs more than looking them up. An entry is reused
// only while the port's name and endpoint labels are unchanged.
type labelSets struct {
	mu      sync.Mutex
	entries map[uint32]labelEntry
}

type labelEntry struct {
	name   string
	labels PortLabels
	set    string
}

// get renders the label set of ofport no, or false when the port has no
// known name.
func (c *labelSets) get(names map[uint32]string, labels map[string]PortLabels, no uint32) (string, bool) {
	name, ok := names[no]
	if !ok {
		return "", false
	}
	l := labels[name]
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[no]; ok && e.name == name && e.labels == l {
		return e.set, true
	}
	if c.entries == nil || len(c.entries) > 2*len(names)+1024 {
		c.entries = map[uint32]labelEntry{} // drop the ports that are gone
	}
	set := labelSet("port", name, "ofport", ofportLabel(no), "network", l.Network, "ip", l.IP, "container", l.Container)
	c.entries[no] = labelEntry{name, l, set}
	return set, true
}
