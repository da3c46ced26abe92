package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// DefaultOVSTimeout bounds each OVS collector's requests per read.
const DefaultOVSTimeout = 2 * time.Second

// Switch is the OpenFlow connection the OVS collectors read
// (*openflow.Conn).
type Switch interface {
	PortStats(ctx context.Context, port uint32) ([]openflow.PortStats, error)
	PortDesc(ctx context.Context) ([]openflow.Port, error)
	FlowStats(ctx context.Context, f openflow.FlowStatsFilter) ([]openflow.FlowStats, error)
	TableStats(ctx context.Context) ([]openflow.TableStats, error)
}

// PortLabels are the endpoint labels of an OVS port; empty for ports that
// are not endpoints (the tunnel, LOCAL).
type PortLabels struct {
	Network   string
	IP        string
	Container string // external_ids:container_id of the interface
	Role      string // "endpoint", "gateway" (the host's gateway port, pkg/gateway), "" for other ports
}

// OVSConfig wires an OVS reader.
type OVSConfig struct {
	// Switch returns the current OpenFlow connection, or nil.
	Switch func() Switch
	// Ports returns the endpoint labels by port name (nil: none). It is
	// called at most once per read of Open vSwitch.
	Ports   func() map[string]PortLabels
	Timeout time.Duration // per collector and read; default DefaultOVSTimeout
	// MaxAge bounds the age of the values served: a scrape finding older
	// ones waits for a new read. Default DefaultMaxAge; negative: every
	// scrape reads Open vSwitch and nothing is read in the background.
	MaxAge time.Duration
	// MinPeriod is the shortest wait between background reads (default
	// DefaultMinPeriod); IdleAfter ends them when no scrape asked for a
	// collector for that long (default DefaultIdleAfter).
	MinPeriod, IdleAfter time.Duration
	Logger               *slog.Logger
}

// errNoSwitch is a collector's error while the agent has no connection.
var errNoSwitch = errors.New("no openflow connection")

// OVS reads counters from Open vSwitch with three collectors, each bounded
// by the timeout: "ports" (one port-stats request; port names cached),
// "tables" (one table-stats request for the flows per table, and the miss
// flows by their exact cookie) and "spoof_guard" (the endpoints' drop
// flows, selected by their cookie role). Their values are cached for at
// most MaxAge (see cache): while /metrics is scraped, a background loop
// reads them again every few seconds, so that a scrape rarely waits for
// Open vSwitch, whose answer for 10,000 ports takes hundreds of
// milliseconds. A collector whose read failed exports nothing but
// ofctl_agent_scrape_collector_success 0; the scrape goes on.
type OVS struct {
	cfg    OVSConfig
	names  *portNames
	labels *labelSets
	cache  *cache
}

// NewOVS returns a reader of Open vSwitch through cfg.Switch. Close stops
// its background reads.
func NewOVS(cfg OVSConfig) *OVS {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultOVSTimeout
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MinPeriod <= 0 {
		cfg.MinPeriod = DefaultMinPeriod
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = DefaultIdleAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ports == nil {
		cfg.Ports = func() map[string]PortLabels { return nil }
	}
	o := &OVS{cfg: cfg, names: &portNames{}, labels: &labelSets{}}
	o.cache = newCache(cfg.MaxAge, cfg.MinPeriod, cfg.IdleAfter, o.read)
	return o
}

// Close stops the background reads; scrapes still work (reading Open
// vSwitch when their values are too old).
func (o *OVS) Close() { o.cache.close() }

// Collectors returns the names of the OVS collectors, for Scrape's
// selection (and /metrics?collect[]=NAME).
func Collectors() []string { return []string{"ports", "tables", "spoof_guard"} }

// OVSScrape is the result of one scrape, ready to be written.
type OVSScrape struct {
	at    time.Time
	names []string             // the collectors scraped
	snaps map[string]*snapshot // their values
}

// scrape is what the collectors of one read share.
type scrape struct {
	sw     Switch
	labels func() map[string]PortLabels
}

// Scrape returns the values of the collectors named in only (all when only
// is empty; unknown names are ignored), read from Open vSwitch at most
// MaxAge ago.
func (o *OVS) Scrape(only ...string) *OVSScrape {
	var names []string
	for _, name := range Collectors() {
		if len(only) == 0 || slices.Contains(only, name) {
			names = append(names, name)
		}
	}
	res := &OVSScrape{names: names}
	if len(names) > 0 {
		res.snaps = o.cache.get(names)
	}
	res.at = time.Now()
	return res
}

// read reads the named collectors from Open vSwitch now, concurrently
// (Open vSwitch answers one connection's requests in order).
func (o *OVS) read(names []string) map[string]*snapshot {
	sc := &scrape{sw: o.cfg.Switch(), labels: sync.OnceValue(o.cfg.Ports)}
	out := make(map[string]*snapshot, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := o.run(name, sc)
			mu.Lock()
			out[name] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// run reads one collector, bounded by the timeout.
func (o *OVS) run(name string, sc *scrape) *snapshot {
	s := &snapshot{at: time.Now(), err: errNoSwitch}
	if sc.sw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout)
		s.res, s.err = o.collect(ctx, name, sc)
		cancel()
	}
	s.took = time.Since(s.at)
	if s.err != nil {
		s.res = nil
		o.cfg.Logger.Debug("metrics: collector failed", "collector", name, "err", s.err)
	}
	return s
}

// collect runs the named collector.
func (o *OVS) collect(ctx context.Context, name string, sc *scrape) (exposer, error) {
	switch name {
	case "ports":
		return o.readPorts(ctx, sc)
	case "tables":
		return o.readTables(ctx, sc)
	case "spoof_guard":
		return o.readSpoofGuard(ctx, sc)
	}
	return nil, fmt.Errorf("unknown collector %q", name)
}

var (
	famDuration = family{ns + "_scrape_collector_duration_seconds",
		"Time the read of Open vSwitch behind an OVS collector's values in this scrape took.", "gauge"}
	famSuccess = family{ns + "_scrape_collector_success",
		"1 when an OVS collector's values in this scrape were read from Open vSwitch, 0 when the read failed (no connection, timeout, error).", "gauge"}
	famAge = family{ns + "_scrape_collector_age_seconds",
		"Age of an OVS collector's values in this scrape: time since their read from Open vSwitch started (at most the agent's max age, 5 s by default).", "gauge"}
)

// WriteText writes the scrape's families in the text format; families of
// a failed collector are left out.
func (s *OVSScrape) WriteText(w *bufio.Writer) error {
	if len(s.names) == 0 {
		return nil
	}
	t := &textWriter{w: w}
	snaps := make([]*snapshot, len(s.names))
	for i, name := range s.names {
		if snaps[i] = s.snaps[name]; snaps[i] == nil {
			snaps[i] = &snapshot{at: s.at, err: errNoSwitch}
		}
	}
	for _, f := range []struct {
		family
		value func(*snapshot) float64
	}{
		{famDuration, func(sn *snapshot) float64 { return sn.took.Seconds() }},
		{famSuccess, func(sn *snapshot) float64 { return b2f(sn.err == nil) }},
		{famAge, func(sn *snapshot) float64 { return max(s.at.Sub(sn.at), 0).Seconds() }},
	} {
		t.header(f.family)
		for i, name := range s.names {
			t.sample(f.name, labelSet("collector", name), f.value(snaps[i]))
		}
	}
	for _, sn := range snaps {
		if sn.err == nil {
			sn.res.write(t)
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
	set := labelSet("port", name, "ofport", ofportLabel(no), "network", l.Network, "ip", l.IP, "container", l.Container, "role", l.Role)
	c.entries[no] = labelEntry{name, l, set}
	return set, true
}
