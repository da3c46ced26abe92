package metrics

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

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

// Cookie selection of the local endpoints' flows (any endpoint).
var (
	endpointCookie     = pipeline.Cookie(pipeline.CategoryLocalEndpoint, 0)
	endpointCookieMask = pipeline.MagicMask | 0xff<<40
)

// spoofResult is what the spoof_guard collector read: drops by ofport.
type spoofResult []spoofDrops

type spoofDrops struct {
	labels  string
	packets uint64
}

// readSpoofGuard reads the endpoints' spoof_guard flows (raw, not
// decoded) for each endpoint port's drop counter: its in_port=X flow
// without instructions, below the flows admitting its own MAC and IP. At
// four flows per endpoint this is the costly part of a scrape.
func (o *OVS) readSpoofGuard(ctx context.Context, sc *scrape) (spoofResult, error) {
	flows, err := sc.sw.FlowStats(ctx, openflow.FlowStatsFilter{TableID: uint8(pipeline.SpoofGuard),
		Cookie: endpointCookie, CookieMask: endpointCookieMask, RawOnly: true})
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

// readTables reads the flow count of every pipeline table (an aggregate
// request each: one small reply however many flows) and the tables' miss
// flows (the agent's fixed flows, a handful).
func (o *OVS) readTables(ctx context.Context, sc *scrape) (tablesResult, error) {
	tables := pipeline.Tables()
	res := tablesResult{flows: make([]uint32, len(tables)), missDrops: map[uint8]uint64{}}
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, t := range tables { // concurrent: the requests share round trips
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res.flows[i], errs[i] = flowCount(ctx, sc.sw, t.ID); errs[i] != nil {
				errs[i] = fmt.Errorf("table %s: %w", t.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return tablesResult{}, err
	}
	fixed, err := sc.sw.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables,
		Cookie: pipeline.FixedCookie(), CookieMask: pipeline.ObjectMask, RawOnly: true})
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

// flowCount asks the switch how many flows table holds (OFPMP_AGGREGATE).
func flowCount(ctx context.Context, sw Switch, table uint8) (uint32, error) {
	reply, err := sw.Request(ctx, aggregateRequest{table: table})
	if err != nil {
		return 0, err
	}
	mp, ok := reply.(*openflow13.MultipartReply)
	if !ok || mp.Type != openflow13.MultipartType_Aggregate || len(mp.Body) != 1 {
		return 0, fmt.Errorf("aggregate stats: unexpected reply %T", reply)
	}
	agg, ok := mp.Body[0].(*openflow13.AggregateStats)
	if !ok {
		return 0, fmt.Errorf("aggregate stats: unexpected body %T", mp.Body[0])
	}
	return agg.FlowCount, nil
}

// aggregateRequest is an OpenFlow 1.3 OFPMP_AGGREGATE request for every
// flow of one table (any cookie, port and group, empty match);
// pkg/openflow has no method for it. The connection sets the xid.
type aggregateRequest struct{ table uint8 }

const aggregateRequestLen = 8 + 8 + 32 + 8 // header, multipart header, body, empty ofp_match

func (aggregateRequest) Len() uint16 { return aggregateRequestLen }

func (r aggregateRequest) MarshalBinary() ([]byte, error) {
	b := make([]byte, aggregateRequestLen)
	b[0], b[1] = 4, openflow13.Type_MultiPartRequest
	binary.BigEndian.PutUint16(b[2:4], aggregateRequestLen)
	binary.BigEndian.PutUint16(b[8:10], openflow13.MultipartType_Aggregate)
	body := b[16:]
	body[0] = r.table
	binary.BigEndian.PutUint32(body[4:8], openflow13.P_ANY)
	binary.BigEndian.PutUint32(body[8:12], openflow13.OFPG_ANY)
	binary.BigEndian.PutUint16(body[32:34], openflow13.MatchType_OXM)
	binary.BigEndian.PutUint16(body[34:36], 4) // no match fields
	return b, nil
}

func (aggregateRequest) UnmarshalBinary([]byte) error {
	return errors.New("aggregate request: encode only")
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
