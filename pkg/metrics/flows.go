package metrics

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

var (
	famTableFlows = family{ns + "_table_flows", "Flows in a pipeline table, as Open vSwitch reports them (every cookie).", "gauge"}
	famMissDrops  = family{ns + "_table_miss_drops_packets_total",
		"Packets dropped by a table's priority-0 miss flow (tables whose miss flow drops).", "counter"}
	famSpoofDrops = family{ns + "_spoof_drops_packets_total",
		"Packets from a local endpoint's port dropped by spoof_guard (wrong source MAC or IP, or neither IPv4 nor ARP): the port's drop flow counter.", "counter"}
)

// Cookie selection of the local endpoints' spoof_guard drop flows: one per
// endpoint (the role), not every flow of the table.
var (
	spoofDropCookie     = pipeline.RoleCookie(pipeline.CategoryLocalEndpoint, pipeline.RoleSpoofDrop)
	spoofDropCookieMask = pipeline.RoleMask
)

// spoofResult is what the spoof_guard collector read: drops by ofport.
type spoofResult []spoofDrops

type spoofDrops struct {
	labels  string
	packets uint64
}

// readSpoofGuard reads each endpoint port's drop counter: the in_port=X
// flow without instructions below the flows admitting its own MAC and IP,
// which its cookie's role singles out (Open vSwitch sends these alone, one
// per endpoint, not the three spoof_guard flows of each; raw, not decoded).
func (o *OVS) readSpoofGuard(ctx context.Context, sc *scrape) (spoofResult, error) {
	flows, err := sc.sw.FlowStats(ctx, openflow.FlowStatsFilter{TableID: pipeline.SpoofGuard.ID(),
		Cookie: spoofDropCookie, CookieMask: spoofDropCookieMask, RawOnly: true})
	if err != nil {
		return nil, fmt.Errorf("spoof_guard flow stats: %w", err)
	}
	drops := map[uint32]uint64{} // by in_port; summed should a port have two
	for i := range flows {
		if f := &flows[i]; len(f.InstructionBytes) == 0 {
			if port, ok := matchInPort(f.MatchBytes); ok {
				drops[port] += f.PacketCount
			}
		}
	}
	nos := slices.Sorted(maps.Keys(drops))
	names, err := o.names.lookup(ctx, sc.sw, nos)
	if err != nil {
		return nil, err
	}
	labels := sc.labels()
	res := make(spoofResult, 0, len(nos))
	for _, no := range nos {
		if ls, ok := o.labels.get(names, labels, no); ok {
			res = append(res, spoofDrops{ls, drops[no]})
		}
	}
	return res, nil
}

func (r spoofResult) write(t *textWriter) {
	t.header(famSpoofDrops)
	for _, d := range r {
		t.counter(famSpoofDrops.name, d.labels, d.packets)
	}
}

// tablesResult is what the tables collector read.
type tablesResult struct {
	flows     []uint32         // by table ID
	missDrops map[uint8]uint64 // by table ID, tables whose miss flow drops
}

// readTables reads the flow count of every pipeline table (one table-stats
// request: Open vSwitch keeps the counts, so it visits no flow) and the
// tables' miss flows (the agent's fixed flows, a handful, selected by their
// exact cookie, which Open vSwitch looks up in its cookie index).
func (o *OVS) readTables(ctx context.Context, sc *scrape) (tablesResult, error) {
	tables := pipeline.Tables()
	stats, err := sc.sw.TableStats(ctx)
	if err != nil {
		return tablesResult{}, fmt.Errorf("table stats: %w", err)
	}
	res := tablesResult{flows: make([]uint32, len(tables)), missDrops: map[uint8]uint64{}}
	seen := 0
	for _, ts := range stats {
		if int(ts.TableID) < len(tables) {
			res.flows[ts.TableID] = ts.ActiveCount
			seen++
		}
	}
	if seen != len(tables) {
		return tablesResult{}, fmt.Errorf("table stats: %d of the %d pipeline tables in the reply", seen, len(tables))
	}
	fixed, err := sc.sw.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables,
		Cookie: pipeline.FixedCookie(), CookieMask: ^uint64(0), RawOnly: true})
	if err != nil {
		return tablesResult{}, fmt.Errorf("miss flow stats: %w", err)
	}
	for i := range fixed {
		if f := &fixed[i]; f.Priority == 0 && len(f.InstructionBytes) == 0 && int(f.TableID) < len(tables) {
			res.missDrops[f.TableID] += f.PacketCount
		}
	}
	return res, nil
}

func (r tablesResult) write(t *textWriter) {
	tables := pipeline.Tables()
	t.header(famTableFlows)
	for i, n := range r.flows {
		t.counter(famTableFlows.name, labelSet("table", tables[i].Name), uint64(n))
	}
	t.header(famMissDrops)
	for i, tb := range tables {
		if v, ok := r.missDrops[uint8(i)]; ok {
			t.counter(famMissDrops.name, labelSet("table", tb.Name), v)
		}
	}
}

// matchInPort returns the OXM in_port of a raw ofp_match (header and
// padding included), if it has one.
func matchInPort(m []byte) (uint32, bool) {
	if len(m) < 4 {
		return 0, false
	}
	n := int(binary.BigEndian.Uint16(m[2:4]))
	if n < 4 || n > len(m) {
		return 0, false
	}
	for tlvs := m[4:n]; len(tlvs) >= 4; {
		class, field, size := binary.BigEndian.Uint16(tlvs[0:2]), tlvs[2]>>1, int(tlvs[3])
		if len(tlvs) < 4+size {
			return 0, false
		}
		if class == openflow13.OXM_CLASS_OPENFLOW_BASIC && field == openflow13.OXM_FIELD_IN_PORT && size == 4 && tlvs[2]&1 == 0 {
			return binary.BigEndian.Uint32(tlvs[4:8]), true
		}
		tlvs = tlvs[4+size:]
	}
	return 0, false
}
