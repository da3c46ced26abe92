package resolver

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/miekg/dns"
)

// The fast path: a stub resolver's usual query (one question, an
// uncompressed name of plain characters, at most an OPT record) for a name
// of the network is parsed and answered on the reader's own buffers,
// without allocating, so that a busy resolver does not make the garbage
// collector stop it. Anything else goes through miekg/dns (the general
// path); TestFastPathSameAnswers and FuzzQuery check that both answer alike.

// fastQuery is what the fast parser keeps besides the query.
type fastQuery struct {
	flags   uint16 // the query's header flags
	qEnd    int    // end of the question section
	edns    bool
	udpSize uint16
	do      bool
}

// scratch is one reader's buffers, reused query after query.
type scratch struct {
	name [256]byte
	res  result
	out  []byte
}

func newScratch() *scratch {
	return &scratch{out: make([]byte, 0, maxUDPAnswer+512), res: result{addrs: make([]netip.Addr, 0, 8), ptrs: make([]string, 0, 4)}}
}

// parseFast reads raw into q and f when it has the usual shape; the name,
// lowercased, lives in sc.name until the next call. False: use the general
// path.
func parseFast(raw []byte, sc *scratch, q *query, f *fastQuery) bool {
	if len(raw) < headerLen+5 {
		return false
	}
	f.flags = binary.BigEndian.Uint16(raw[2:])
	if f.flags&0xf800 != 0 || // QR, opcode other than QUERY
		binary.BigEndian.Uint16(raw[4:]) != 1 || binary.BigEndian.Uint16(raw[6:]) != 0 || binary.BigEndian.Uint16(raw[8:]) != 0 {
		return false
	}
	arcount := binary.BigEndian.Uint16(raw[10:])
	off, n, ok := fastName(raw, &sc.name)
	if !ok || arcount > 1 || off+4 > len(raw) {
		return false
	}
	*q = query{questions: 1, ednsVer: -1, qtype: binary.BigEndian.Uint16(raw[off:]), qclass: binary.BigEndian.Uint16(raw[off+2:])}
	off += 4
	f.qEnd, f.edns = off, false
	if arcount == 1 {
		if off, ok = fastOPT(raw, off, q, f); !ok {
			return false
		}
	}
	if off != len(raw) {
		return false
	}
	q.name = unsafe.String(&sc.name[0], n) // read only while sc.name is not reused
	return true
}

// fastName lowercases the question's name into buf ("a.b." or "."); false
// for compression pointers and characters the general path escapes.
func fastName(raw []byte, buf *[256]byte) (off, n int, ok bool) {
	off = headerLen
	for {
		if off >= len(raw) {
			return 0, 0, false
		}
		l := int(raw[off])
		off++
		if l == 0 {
			break
		}
		if l > maxLabel || off+l > len(raw) || n+l+1 > 254 {
			return 0, 0, false
		}
		for _, c := range raw[off : off+l] {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return 0, 0, false
			}
			buf[n] = c
			n++
		}
		buf[n] = '.'
		n++
		off += l
	}
	if n == 0 {
		buf[0] = '.'
		n = 1
	}
	return off, n, true
}

// fastOPT reads an OPT record at off: root owner, its options well formed
// and only those a stub sends (a cookie, padding): the general path judges
// the others as miekg/dns parses them (some with a fixed length).
func fastOPT(raw []byte, off int, q *query, f *fastQuery) (int, bool) {
	if off+11 > len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != dns.TypeOPT || raw[off+5] != 0 {
		return 0, false
	}
	f.edns, f.udpSize = true, binary.BigEndian.Uint16(raw[off+3:])
	q.ednsVer = int(raw[off+6])
	f.do = raw[off+7]&0x80 != 0
	end := off + 11 + int(binary.BigEndian.Uint16(raw[off+9:]))
	if end > len(raw) {
		return 0, false
	}
	for o := off + 11; o < end; {
		if o+4 > end {
			return 0, false
		}
		if code := binary.BigEndian.Uint16(raw[o:]); code != dns.EDNS0COOKIE && code != dns.EDNS0PADDING {
			return 0, false
		}
		o += 4 + int(binary.BigEndian.Uint16(raw[o+2:]))
		if o > end {
			return 0, false
		}
	}
	return end, true
}

// limit is the largest answer the client can receive.
func (f *fastQuery) limit(tcp bool) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case f.edns:
		return min(max(int(f.udpSize), dns.MinMsgSize), maxUDPAnswer)
	}
	return dns.MinMsgSize
}

// appendFast encodes a local answer or NXDOMAIN with A records and the SOA
// only; false when r needs more (PTR, the SOA as answer) or does not fit
// (the general path truncates).
func (a *answerer) appendFast(out, raw []byte, f *fastQuery, r *result, tcp bool) ([]byte, bool) {
	if r.kind != KindLocal && r.kind != KindNXDomain || len(r.ptrs) > 0 || r.soaAns {
		return nil, false
	}
	size := f.qEnd + 16*len(r.addrs)
	if r.soa {
		size += len(a.soaRR)
	}
	if f.edns {
		size += 11
	}
	if size > f.limit(tcp) {
		return nil, false
	}
	flags := 0x8000 | 0x0400 | 0x0080 | f.flags&0x0110 | uint16(r.rcode) // QR AA RA, RD and CD copied
	var ns, ar uint16
	if r.soa {
		ns = 1
	}
	if f.edns {
		ar = 1
	}
	out = append(out[:0], raw[:2]...)
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(r.addrs)))
	out = binary.BigEndian.AppendUint16(out, ns)
	out = binary.BigEndian.AppendUint16(out, ar)
	out = append(out, raw[headerLen:f.qEnd]...) // the question as asked
	for _, addr := range r.addrs {
		out = append(out, 0xc0, headerLen, 0, byte(dns.TypeA), 0, byte(dns.ClassINET))
		out = binary.BigEndian.AppendUint32(out, a.ttl)
		out = append(out, 0, 4)
		b := addr.As4()
		out = append(out, b[:]...)
	}
	if r.soa {
		out = append(out, a.soaRR...)
	}
	if f.edns {
		var do byte
		if f.do {
			do = 0x80
		}
		out = append(out, 0, 0, byte(dns.TypeOPT), maxUDPAnswer>>8, maxUDPAnswer&0xff, 0, 0, do, 0, 0, 0)
	}
	return out, true
}
