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

// flowsResult is what the flows collector read.
type flowsResult struct {
	tableFlows []int            // by table ID
	missDrops  map[uint8]uint64 // by table ID, tables whose miss flow drops
	spoof      []spoofDrops     // by ofport
}

type spoofDrops struct {
	labels  string
	packets uint64
}

// readFlows reads every flow once (raw, not decoded) for the flow count
// of each pipeline table, the packets dropped by the tables' miss flows,
// and each endpoint port's spoof_guard drop counter (its in_port=X drop
// flow below the flows admitting its own MAC and IP). One dump costs Open
// vSwitch less than a request per table, and the agent's drift check
// dumps the same flows every few seconds.
func (o *OVS) readFlows(ctx context.Context, sc *scrape) (flowsResult, error) {
	flows, err := sc.sw.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables, RawOnly: true})
	if err != nil {
		return flowsResult{}, fmt.Errorf("flow stats: %w", err)
	}
	tables := pipeline.Tables()
	res := flowsResult{tableFlows: make([]int, len(tables)), missDrops: map[uint8]uint64{}}
	drops := map[uint32]uint64{} // by in_port; summed should a port have two
	for i := range flows {
		f := &flows[i]
		if int(f.TableID) >= len(tables) {
			continue // not the agent's table
		}
		res.tableFlows[f.TableID]++
		if len(f.InstructionBytes) != 0 {
			continue // not a drop
		}
		cat, _, ours := pipeline.ParseCookie(f.Cookie)
		switch {
		case !ours:
		case cat == pipeline.CategoryFixed && f.Priority == 0:
			res.missDrops[f.TableID] += f.PacketCount
		case cat == pipeline.CategoryLocalEndpoint && f.TableID == uint8(pipeline.SpoofGuard):
			if port, ok := matchInPort(f.MatchBytes); ok {
				drops[port] += f.PacketCount
			}
		}
	}
	nos := slices.Sorted(maps.Keys(drops))
	names, err := o.names.lookup(ctx, sc.sw, nos)
	if err != nil {
		return flowsResult{}, err
	}
	labels := sc.labels()
	for _, no := range nos {
		if ls, ok := portLabelValues(names, labels, no); ok {
			res.spoof = append(res.spoof, spoofDrops{ls, drops[no]})
		}
	}
	return res, nil
}

func (r flowsResult) write(t *textWriter) {
	tables := pipeline.Tables()
	t.header(famSpoofDrops)
	for _, d := range r.spoof {
		t.counter(famSpoofDrops.name, d.labels, d.packets)
	}
	t.header(famTableFlows)
	for i, n := range r.tableFlows {
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
