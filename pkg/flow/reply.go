package flow

import (
	"encoding/binary"
	"fmt"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// FromReply converts a raw flow-stats entry read by pkg/openflow (its
// ofp_match still has the header and padding) into Stats (bare OXM TLVs).
func FromReply(r *openflow.FlowStats) (Stats, error) {
	m := r.MatchBytes
	if len(m) < 4 {
		return Stats{}, fmt.Errorf("%w: match of %d bytes", ErrMalformed, len(m))
	}
	n := int(binary.BigEndian.Uint16(m[2:4]))
	if n < 4 || n > len(m) {
		return Stats{}, fmt.Errorf("%w: match length %d of %d bytes", ErrMalformed, n, len(m))
	}
	return Stats{Table: r.TableID, Priority: r.Priority, Cookie: r.Cookie, Flags: r.Flags,
		IdleTimeout: r.IdleTimeout, HardTimeout: r.HardTimeout, Packets: r.PacketCount, Bytes: r.ByteCount,
		Duration: r.Duration, Match: m[4:n], Instructions: r.InstructionBytes}, nil
}
