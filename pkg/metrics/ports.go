package metrics

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// portCounters are the families of OpenFlow port statistics.
var portCounters = []struct {
	family
	get func(*openflow.PortStats) uint64
}{
	{family{ns + "_port_receive_packets_total", "Packets received by Open vSwitch on the port (from the container for a veth).", "counter"},
		func(s *openflow.PortStats) uint64 { return s.RxPackets }},
	{family{ns + "_port_receive_bytes_total", "Bytes received by Open vSwitch on the port.", "counter"},
		func(s *openflow.PortStats) uint64 { return s.RxBytes }},
	{family{ns + "_port_receive_drops_total", "Packets dropped by the port on receive (port statistics, not flow drops).", "counter"},
		func(s *openflow.PortStats) uint64 { return s.RxDropped }},
	{family{ns + "_port_receive_errors_total", "Receive errors on the port.", "counter"},
		func(s *openflow.PortStats) uint64 { return s.RxErrors }},
	{family{ns + "_port_transmit_packets_total", "Packets sent by Open vSwitch out of the port (to the container for a veth).", "counter"},
		func(s *openflow.PortStats) uint64 { return s.TxPackets }},
	{family{ns + "_port_transmit_bytes_total", "Bytes sent by Open vSwitch out of the port.", "counter"},
		func(s *openflow.PortStats) uint64 { return s.TxBytes }},
	{family{ns + "_port_transmit_drops_total", "Packets dropped by the port on transmit.", "counter"},
		func(s *openflow.PortStats) uint64 { return s.TxDropped }},
	{family{ns + "_port_transmit_errors_total", "Transmit errors on the port.", "counter"},
		func(s *openflow.PortStats) uint64 { return s.TxErrors }},
}

// portsResult is what the ports collector read: the statistics of every
// named port, by ofport, with their rendered label sets.
type portsResult struct {
	stats  []openflow.PortStats
	labels []string
}

// readPorts reads the statistics of every port of the bridge.
func (o *OVS) readPorts(ctx context.Context, sc *scrape) (portsResult, error) {
	stats, err := sc.sw.PortStats(ctx, openflow13.P_ANY)
	if err != nil {
		return portsResult{}, fmt.Errorf("port stats: %w", err)
	}
	nos := make([]uint32, len(stats))
	for i := range stats {
		nos[i] = stats[i].PortNo
	}
	names, err := o.names.lookup(ctx, sc.sw, nos)
	if err != nil {
		return portsResult{}, err
	}
	slices.SortFunc(stats, func(a, b openflow.PortStats) int { return cmp.Compare(a.PortNo, b.PortNo) })
	labels := sc.labels()
	res := portsResult{stats: stats[:0], labels: make([]string, 0, len(stats))}
	for _, s := range stats {
		if ls, ok := o.labels.get(names, labels, s.PortNo); ok { // else gone between the two requests
			res.stats = append(res.stats, s)
			res.labels = append(res.labels, ls)
		}
	}
	return res, nil
}

func (r portsResult) write(t *textWriter) {
	for _, pc := range portCounters {
		t.header(pc.family)
		for i := range r.stats {
			if v := pc.get(&r.stats[i]); v != math.MaxUint64 { // all ones: not available
				t.counter(pc.name, r.labels[i], v)
			}
		}
	}
}

// ofportLabel is the port number as ovs-ofctl prints it.
func ofportLabel(no uint32) string {
	if no == openflow13.P_LOCAL {
		return "LOCAL"
	}
	return strconv.FormatUint(uint64(no), 10)
}

// portNames caches ofport -> name for one connection. It is re-read with
// PortDesc when the connection changes, when a port is not in it, or when
// port-status events were lost; port-status events update it in between.
type portNames struct {
	mu      sync.Mutex
	sw      Switch
	sub     *openflow.Subscription
	dropped uint64
	names   map[uint32]string // nil: to be read
	reads   int               // PortDesc requests made (tests)
}

// portEventSource is implemented by *openflow.Conn.
type portEventSource interface {
	SubscribePortStatus(n int) *openflow.Subscription
}

// lookup returns the names of the ports in want that exist.
func (p *portNames) lookup(ctx context.Context, sw Switch, want []uint32) (map[uint32]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sw != p.sw {
		p.switchTo(sw)
	}
	p.applyEvents()
	if p.names == nil || p.missing(want) {
		if err := p.read(ctx); err != nil {
			return nil, err
		}
	}
	out := make(map[uint32]string, len(want))
	for _, no := range want {
		if n, ok := p.names[no]; ok {
			out[no] = n
		}
	}
	return out, nil
}

func (p *portNames) switchTo(sw Switch) {
	if p.sub != nil {
		p.sub.Close()
		p.sub = nil
	}
	p.sw, p.names, p.dropped = sw, nil, 0
	if es, ok := sw.(portEventSource); ok {
		p.sub = es.SubscribePortStatus(256)
	}
}

// applyEvents folds queued port-status events into the cache.
func (p *portNames) applyEvents() {
	if p.sub == nil {
		return
	}
	for p.applyOne() {
	}
	if d := p.sub.Dropped(); d != p.dropped {
		p.dropped, p.names = d, nil // events were lost: read again
	}
}

// applyOne applies one queued event; false when none is queued.
func (p *portNames) applyOne() bool {
	select {
	case ev, ok := <-p.sub.C:
		if !ok || p.names == nil {
			return ok
		}
		if ev.Reason == openflow13.PR_DELETE {
			delete(p.names, ev.Port.No)
		} else {
			p.names[ev.Port.No] = ev.Port.Name
		}
		return true
	default:
		return false
	}
}

func (p *portNames) missing(want []uint32) bool {
	for _, no := range want {
		if _, ok := p.names[no]; !ok {
			return true
		}
	}
	return false
}

func (p *portNames) read(ctx context.Context) error {
	p.reads++
	ports, err := p.sw.PortDesc(ctx)
	if err != nil {
		p.names = nil
		return fmt.Errorf("port description: %w", err)
	}
	p.names = make(map[uint32]string, len(ports))
	for _, port := range ports {
		p.names[port.No] = port.Name
	}
	return nil
}
