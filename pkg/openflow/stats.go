package openflow

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
)

// AllTables selects every table in a FlowStatsFilter (OFPTT_ALL).
const AllTables = openflow13.OFPTT_ALL

// FlowStatsFilter selects the flows of a flow-stats request.
type FlowStatsFilter struct {
	TableID    uint8  // a table, or AllTables
	Cookie     uint64 // flows whose cookie & CookieMask == Cookie & CookieMask
	CookieMask uint64 // 0 = any cookie
	// RawOnly skips libOpenflow's decoding: only the raw match and
	// instruction bytes are set (cheaper, for callers with their own decoder).
	RawOnly bool
}

// FlowStats is one flow entry of a flow-stats reply. Match and
// Instructions are decoded with libOpenflow; when it cannot decode them
// (an action it does not know, ...) DecodeErr says why and only the raw
// bytes are set. The raw bytes are always set.
type FlowStats struct {
	TableID     uint8
	Priority    uint16
	IdleTimeout uint16
	HardTimeout uint16
	Flags       uint16
	Cookie      uint64
	PacketCount uint64
	ByteCount   uint64
	Duration    time.Duration

	Match        openflow13.Match
	Instructions []openflow13.Instruction

	MatchBytes       []byte // ofp_match as sent by the switch, padding included
	InstructionBytes []byte // the instructions as sent by the switch
	DecodeErr        error
}

// FlowStats returns the flows selected by f, reading every part of a
// reply that spans several multipart messages.
func (c *Conn) FlowStats(ctx context.Context, f FlowStatsFilter) ([]FlowStats, error) {
	body, err := f.requestBody()
	if err != nil {
		return nil, err
	}
	parse := ParseFlowStats
	if !f.RawOnly {
		parse = func(b []byte) ([]FlowStats, error) { return parseFlowStats(b, true) }
	}
	return multipartAll(ctx, c, openflow13.MultipartType_Flow, body, parse)
}

// FlowStatsEach calls each for every flow selected by f as the replies
// arrive, so that a dump of many flows is never held whole. Only the raw
// bytes are set (RawOnly is implied), and they point into the reply: the
// entry is valid only during the call. An error from each ends the request
// (later replies are dropped) and is returned.
func (c *Conn) FlowStatsEach(ctx context.Context, f FlowStatsFilter, each func(*FlowStats) error) error {
	body, err := f.requestBody()
	if err != nil {
		return err
	}
	return c.multipartEach(ctx, openflow13.MultipartType_Flow, body, func(b []byte) error {
		return eachRawFlow(b, each)
	})
}

// eachRawFlow calls each for every entry of a flow-stats reply body, raw
// bytes only, pointing into body.
func eachRawFlow(body []byte, each func(*FlowStats) error) error {
	return eachFlowEntry(body, func(e []byte) error {
		fs, err := parseFlowEntry(e, false, false)
		if err != nil {
			return err
		}
		return each(&fs)
	})
}

// FlowDump is the reply to one flow-stats request kept as the switch sent
// it, its entries undecoded (about the size of the wire bytes): a dump
// taken now and read later, for instance while the caller is still working
// out what to compare it with.
type FlowDump struct {
	bodies [][]byte
	flows  int
}

// DumpFlowStats returns the flows selected by f as a FlowDump. The
// framing of every entry is checked as the replies arrive.
func (c *Conn) DumpFlowStats(ctx context.Context, f FlowStatsFilter) (*FlowDump, error) {
	body, err := f.requestBody()
	if err != nil {
		return nil, err
	}
	d := &FlowDump{}
	err = c.multipartEach(ctx, openflow13.MultipartType_Flow, body, func(b []byte) error {
		if err := eachRawFlow(b, func(*FlowStats) error { d.flows++; return nil }); err != nil {
			return err
		}
		d.bodies = append(d.bodies, b) // each reply's own buffer: kept, not copied
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Len is the number of flows in the dump.
func (d *FlowDump) Len() int { return d.flows }

// Each calls each for every flow of the dump, in the switch's order, as
// FlowStatsEach does: raw bytes only, valid during the call. An error from
// each ends the walk and is returned.
func (d *FlowDump) Each(each func(*FlowStats) error) error {
	for _, b := range d.bodies {
		if err := eachRawFlow(b, each); err != nil {
			return err
		}
	}
	return nil
}

// requestBody is the body of the flow-stats request for f.
func (f FlowStatsFilter) requestBody() ([]byte, error) {
	req := openflow13.NewFlowStatsRequest()
	req.TableId = f.TableID
	req.Cookie, req.CookieMask = f.Cookie, f.CookieMask
	return req.MarshalBinary()
}

// PortStats returns the counters of port (openflow13.P_ANY for all ports).
func (c *Conn) PortStats(ctx context.Context, port uint32) ([]PortStats, error) {
	body := make([]byte, 8) // OpenFlow 1.3 ofp_port_stats_request: port_no, pad[4]
	binary.BigEndian.PutUint32(body, port)
	return multipartAll(ctx, c, openflow13.MultipartType_Port, body, parsePortStats)
}

// PortDesc returns the description of every port of the switch.
func (c *Conn) PortDesc(ctx context.Context) ([]Port, error) {
	return multipartAll(ctx, c, openflow13.MultipartType_PortDesc, nil, parsePortDesc)
}

const flowStatsFixedLen = 48

// ParseFlowStats parses the body of one flow-stats (OFPMP_FLOW) reply as
// FlowStats with RawOnly does: the framing of every entry checked, the
// match and instructions kept as bytes (copies). Test switches decode
// with it what they would send.
func ParseFlowStats(body []byte) ([]FlowStats, error) { return parseFlowStats(body, false) }

// parseFlowStats decodes the body of one flow-stats reply. The framing of
// every entry is checked here (libOpenflow's FlowStats decoder trusts the
// lengths and indexes past the end); the match and instructions of a
// well-framed entry are handed to libOpenflow under guard.
func parseFlowStats(body []byte, decode bool) ([]FlowStats, error) {
	var out []FlowStats
	err := eachFlowEntry(body, func(e []byte) error {
		fs, err := parseFlowEntry(e, decode, true)
		if err == nil {
			out = append(out, fs)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachFlowEntry checks the framing of a flow-stats reply body and calls f
// with each entry.
func eachFlowEntry(body []byte, f func([]byte) error) error {
	for len(body) > 0 {
		if len(body) < flowStatsFixedLen+8 {
			return malformed("OFPMP_FLOW: %d trailing bytes", len(body))
		}
		n := int(binary.BigEndian.Uint16(body[0:2]))
		if n < flowStatsFixedLen+8 || n > len(body) || n%8 != 0 {
			return malformed("OFPMP_FLOW: entry length %d of %d bytes left", n, len(body))
		}
		if err := f(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

// parseFlowEntry decodes one entry; with clone its byte slices are copies,
// else they point into e.
func parseFlowEntry(e []byte, decode, clone bool) (FlowStats, error) {
	fs := FlowStats{
		TableID:     e[2],
		Duration:    duration(e[4:12]),
		Priority:    binary.BigEndian.Uint16(e[12:14]),
		IdleTimeout: binary.BigEndian.Uint16(e[14:16]),
		HardTimeout: binary.BigEndian.Uint16(e[16:18]),
		Flags:       binary.BigEndian.Uint16(e[18:20]),
		Cookie:      binary.BigEndian.Uint64(e[24:32]),
		PacketCount: binary.BigEndian.Uint64(e[32:40]),
		ByteCount:   binary.BigEndian.Uint64(e[40:48]),
	}
	rest := e[flowStatsFixedLen:]
	mlen := int(binary.BigEndian.Uint16(rest[2:4]))
	padded := (mlen + 7) / 8 * 8
	if mlen < 4 || padded > len(rest) {
		return fs, malformed("OFPMP_FLOW: match length %d of %d bytes left", mlen, len(rest))
	}
	fs.MatchBytes, fs.InstructionBytes = rest[:padded], rest[padded:]
	if clone {
		fs.MatchBytes, fs.InstructionBytes = bytes.Clone(fs.MatchBytes), bytes.Clone(fs.InstructionBytes)
	}
	if !decode {
		return fs, nil
	}
	fs.DecodeErr = decodeMatch(&fs)
	if fs.DecodeErr == nil {
		fs.Instructions, fs.DecodeErr = decodeInstructions(fs.InstructionBytes)
	}
	return fs, nil
}

// decodeMatch decodes fs.MatchBytes into fs.Match with libOpenflow and
// checks it consumed exactly the match.
func decodeMatch(fs *FlowStats) error {
	m := openflow13.NewMatch()
	m.Fields = nil
	err := guard("ofp_match", func() error {
		if err := m.UnmarshalBinary(fs.MatchBytes); err != nil {
			return err
		}
		if int(m.Len()) != len(fs.MatchBytes) {
			return fmt.Errorf("decoded %d of %d match bytes", m.Len(), len(fs.MatchBytes))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("decoding match: %w", err)
	}
	fs.Match = *m
	return nil
}

// decodeInstructions decodes a list of instructions with libOpenflow after
// checking each one's framing.
func decodeInstructions(b []byte) ([]openflow13.Instruction, error) {
	var out []openflow13.Instruction
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("decoding instructions: %d trailing bytes", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < 4 || n > len(b) {
			return nil, fmt.Errorf("decoding instructions: length %d of %d bytes left", n, len(b))
		}
		var in openflow13.Instruction
		err := guard("instruction", func() error {
			in = openflow13.DecodeInstr(b[:n])
			if in == nil {
				return fmt.Errorf("unknown instruction type %d", binary.BigEndian.Uint16(b[0:2]))
			}
			if int(in.Len()) != n {
				return fmt.Errorf("instruction type %d: decoded %d of %d bytes", binary.BigEndian.Uint16(b[0:2]), in.Len(), n)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("decoding instructions: %w", err)
		}
		out = append(out, in)
		b = b[n:]
	}
	return out, nil
}
