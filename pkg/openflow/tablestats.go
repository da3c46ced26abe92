package openflow

import (
	"context"
	"encoding/binary"

	"github.com/contiv/libOpenflow/openflow13"
)

// TableStats is one entry of an OpenFlow 1.3 table-stats reply
// (OFPMP_TABLE, struct ofp_table_stats). libOpenflow's TableStats has the
// OpenFlow 1.0 layout (64 bytes, with a name and wildcards): reading a 1.3
// reply with it misplaces every field, so the 24-byte entries are decoded
// here.
type TableStats struct {
	TableID      uint8
	ActiveCount  uint32 // flows in the table, every cookie
	LookupCount  uint64 // packets looked up in the table
	MatchedCount uint64 // packets that hit a flow (a table-miss flow counts as a hit)
}

const tableStatsLen = 24

// TableStats returns the statistics of every table of the switch: one
// request, one reply of 24 bytes per table. Open vSwitch keeps each
// table's flow count, so it answers without visiting the flows (an
// aggregate request walks them).
func (c *Conn) TableStats(ctx context.Context) ([]TableStats, error) {
	return multipartAll(ctx, c, openflow13.MultipartType_Table, nil, parseTableStats)
}

// parseTableStats decodes the body of one table-stats reply.
func parseTableStats(body []byte) ([]TableStats, error) {
	if len(body)%tableStatsLen != 0 {
		return nil, malformed("OFPMP_TABLE: body of %d bytes is not a multiple of %d", len(body), tableStatsLen)
	}
	out := make([]TableStats, 0, len(body)/tableStatsLen)
	for ; len(body) > 0; body = body[tableStatsLen:] {
		out = append(out, TableStats{
			TableID:      body[0],
			ActiveCount:  binary.BigEndian.Uint32(body[4:8]),
			LookupCount:  binary.BigEndian.Uint64(body[8:16]),
			MatchedCount: binary.BigEndian.Uint64(body[16:24]),
		})
	}
	return out, nil
}
