package flow

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
)

const flowStatsFixedLen = 48

// decodeFlowStats is the tests' decoder of a raw flow-stats body (what
// flowtest's switch returns, fuzzed below): the product decodes with
// openflow.ParseFlowStats and FromReply. It parses the body of OFPMP_FLOW multipart replies: a
// sequence of ofp_flow_stats. libOpenflow's FlowStats decoder must not be
// used for this: it drops MAC addresses (EthSrc/EthDst/ArpXHa values are
// copied into nil slices) and panics on several NXM fields.
func decodeFlowStats(body []byte) ([]Stats, error) {
	var out []Stats
	for len(body) > 0 {
		if len(body) < flowStatsFixedLen+4 {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body))
		}
		n := int(binary.BigEndian.Uint16(body[0:2]))
		if n < flowStatsFixedLen+8 || n > len(body) || n%8 != 0 {
			return nil, fmt.Errorf("%w: entry length %d with %d bytes left", ErrMalformed, n, len(body))
		}
		s, err := decodeOne(body[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		body = body[n:]
	}
	return out, nil
}

func decodeOne(e []byte) (Stats, error) {
	be := binary.BigEndian
	s := Stats{
		Table:       e[2],
		Duration:    time.Duration(be.Uint32(e[4:8]))*time.Second + time.Duration(be.Uint32(e[8:12])),
		Priority:    be.Uint16(e[12:14]),
		IdleTimeout: be.Uint16(e[14:16]),
		HardTimeout: be.Uint16(e[16:18]),
		Flags:       be.Uint16(e[18:20]),
		Cookie:      be.Uint64(e[24:32]),
		Packets:     be.Uint64(e[32:40]),
		Bytes:       be.Uint64(e[40:48]),
	}
	m := e[flowStatsFixedLen:]
	if mt := be.Uint16(m[0:2]); mt != openflow13.MatchType_OXM {
		return Stats{}, fmt.Errorf("%w: match type %d, want OXM", ErrMalformed, mt)
	}
	ml := int(be.Uint16(m[2:4]))
	padded := (ml + 7) / 8 * 8
	if ml < 4 || padded > len(m) {
		return Stats{}, fmt.Errorf("%w: match length %d in %d bytes", ErrMalformed, ml, len(m))
	}
	s.Match = append([]byte(nil), m[4:ml]...)
	if _, err := splitTLVs(s.Match); err != nil {
		return Stats{}, err
	}
	s.Instructions = append([]byte(nil), m[padded:]...)
	return s, nil
}
