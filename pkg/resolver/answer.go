package resolver

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// network is one network as its resolver sees it. Immutable: SetNetwork
// replaces it whole.
type network struct {
	name    string
	zone    string // "<network>.<domain>." lowercase; "" when the network's name is not a DNS label
	dotZone string // "." + zone
	gateway netip.Addr
	subnet  netip.Prefix
	stats   *netStats
}

// query is a message reduced to what deciding its answer needs; both the
// fast parser and miekg/dns's produce it.
type query struct {
	opcode    int
	questions int
	name      string // lowercase, fully qualified; valid only during decide
	qtype     uint16
	qclass    uint16
	ednsVer   int // -1 without EDNS
}

// result is the decided answer, before encoding.
type result struct {
	kind   Kind
	rcode  int
	addrs  []netip.Addr // A records
	ptrs   []string     // PTR targets
	soa    bool         // the domain's SOA in the authority section
	soaAns bool         // the domain's SOA as the answer
}

// answerer decides the answer to a query from the table alone; it has no
// side effects besides the rotation of answer order.
type answerer struct {
	names  *Table
	domain string // lowercase, fully qualified: "ofctl.internal."
	dotDom string // "." + domain
	ttl    uint32 // of local records, and the negative TTL in the SOA
	soa    *dns.SOA
	soaRR  []byte // soa in wire format, for the fast encoder
}

func newAnswerer(names *Table, domain string, ttl uint32) *answerer {
	a := &answerer{names: names, domain: domain, dotDom: "." + domain, ttl: ttl, soa: &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: ttl, // RFC 2308: negative answers are cached min(SOA TTL, MINIMUM)
	}}
	a.soaRR = make([]byte, dns.Len(a.soa))
	n, err := dns.PackRR(a.soa, a.soaRR, 0, nil, false)
	if err != nil {
		panic("packing the SOA of a validated domain: " + err.Error())
	}
	a.soaRR = a.soaRR[:n]
	return a
}

// decide fills r with the answer to q, received on nw's address from src;
// r.kind is KindForwarded when the answer is to come from upstream. r's
// slices are reused.
func (a *answerer) decide(q *query, nw *network, src netip.Addr, r *result) {
	*r = result{addrs: r.addrs[:0], ptrs: r.ptrs[:0]}
	switch {
	case q.opcode != dns.OpcodeQuery:
		r.kind, r.rcode = KindNotImp, dns.RcodeNotImplemented
	case q.questions != 1:
		r.kind, r.rcode = KindFormErr, dns.RcodeFormatError
	case !nw.subnet.Contains(src):
		r.kind, r.rcode = KindRefused, dns.RcodeRefused
	case q.ednsVer > 0:
		r.kind, r.rcode = KindFormErr, dns.RcodeBadVers // RFC 6891 6.1.3
	case q.qclass != dns.ClassINET || unsupportedType(q.qtype):
		r.kind, r.rcode = KindNotImp, dns.RcodeNotImplemented
	default:
		a.decideName(q, nw, r)
	}
}

func (a *answerer) decideName(q *query, nw *network, r *result) {
	name := q.name
	switch {
	case dns.CountLabel(name) == 1:
		a.byName(q, nw, name[:len(name)-1], false, r)
	case name == a.domain || strings.HasSuffix(name, a.dotDom):
		a.inDomain(q, nw, name, r)
	case strings.HasSuffix(name, ".in-addr.arpa."):
		if addr, ok := parseReverse(name); ok && nw.subnet.Contains(addr) {
			a.byAddr(q, nw, addr, r)
			return
		}
		r.kind = KindForwarded
	default:
		r.kind = KindForwarded
	}
}

// unsupportedType: zone transfers and meta queries a stub resolver never
// sends to a recursive server.
func unsupportedType(t uint16) bool {
	switch t {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return true
	}
	return false
}

// inDomain answers a name under the cluster domain: only
// <name>.<network>.<domain> of the receiving network exists (and the two
// zones above it, empty). Other networks' names do not exist from here.
func (a *answerer) inDomain(q *query, nw *network, name string, r *result) {
	if name == a.domain || name == nw.zone {
		r.kind = KindLocal
		if q.qtype == dns.TypeSOA && name == a.domain {
			r.soaAns = true
		} else {
			r.soa = true
		}
		return
	}
	if nw.zone != "" {
		if label, ok := strings.CutSuffix(name, nw.dotZone); ok && !strings.Contains(label, ".") {
			a.byName(q, nw, label, true, r)
			return
		}
	}
	a.negative(true, r)
}

// byName answers label's addresses in nw; withSOA: the name is in the
// cluster domain, negative answers carry its SOA.
func (a *answerer) byName(q *query, nw *network, label string, withSOA bool, r *result) {
	r.addrs = a.names.lookup(nw.name, label, r.addrs)
	if len(r.addrs) == 0 {
		a.negative(withSOA, r)
		return
	}
	r.kind = KindLocal
	if q.qtype != dns.TypeA && q.qtype != dns.TypeANY {
		r.addrs = r.addrs[:0]
		r.soa = withSOA // NODATA: the name exists, without this type
	}
}

// byAddr answers a reverse (PTR) query for an address of nw's subnet.
func (a *answerer) byAddr(q *query, nw *network, addr netip.Addr, r *result) {
	r.ptrs = a.names.reverse(nw.name, addr, r.ptrs)
	if len(r.ptrs) == 0 {
		a.negative(false, r)
		return
	}
	r.kind = KindLocal
	if q.qtype != dns.TypePTR && q.qtype != dns.TypeANY {
		r.ptrs = r.ptrs[:0]
		return
	}
	for i, n := range r.ptrs {
		if nw.zone != "" {
			r.ptrs[i] = n + "." + nw.zone
		} else {
			r.ptrs[i] = n + "."
		}
	}
}

// negative is NXDOMAIN, or SERVFAIL while the names are not all loaded.
func (a *answerer) negative(withSOA bool, r *result) {
	if !a.names.Synced() {
		r.kind, r.rcode = KindServFail, dns.RcodeServerFailure
		return
	}
	r.kind, r.rcode, r.soa = KindNXDomain, dns.RcodeNameError, withSOA
}

// queryOf reduces a parsed message.
func queryOf(m *dns.Msg) query {
	q := query{opcode: m.Opcode, questions: len(m.Question), ednsVer: -1}
	if len(m.Question) > 0 {
		q.name = strings.ToLower(m.Question[0].Name)
		q.qtype, q.qclass = m.Question[0].Qtype, m.Question[0].Qclass
	}
	if opt := m.IsEdns0(); opt != nil {
		q.ednsVer = int(opt.Version())
	}
	return q
}

// msg encodes r as the response to req with miekg/dns (the general path).
func (a *answerer) msg(req *dns.Msg, r *result) *dns.Msg {
	if r.kind != KindLocal && r.kind != KindNXDomain {
		m := errorReply(req, r.rcode)
		if r.rcode == dns.RcodeBadVers {
			m.SetEdns0(maxUDPAnswer, false) // an extended rcode travels in the OPT record
		}
		return m
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Rcode = r.rcode
	qname := req.Question[0].Name // as asked: case kept
	for _, addr := range r.addrs {
		m.Answer = append(m.Answer, &dns.A{Hdr: a.header(qname, dns.TypeA), A: addr.AsSlice()})
	}
	for _, p := range r.ptrs {
		m.Answer = append(m.Answer, &dns.PTR{Hdr: a.header(qname, dns.TypePTR), Ptr: p})
	}
	if r.soaAns {
		m.Answer = append(m.Answer, a.soa)
	}
	if r.soa {
		m.Ns = append(m.Ns, a.soa)
	}
	return m
}

func (a *answerer) header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: a.ttl}
}

// errorReply answers req with rcode and no records.
func errorReply(req *dns.Msg, rcode int) *dns.Msg {
	r := new(dns.Msg)
	r.Id = req.Id
	r.Response = true
	r.Opcode = req.Opcode
	r.RecursionDesired = req.RecursionDesired
	r.RecursionAvailable = true
	r.Rcode = rcode
	if len(req.Question) == 1 {
		r.Question = []dns.Question{req.Question[0]}
	}
	return r
}

// parseReverse reads "d.c.b.a.in-addr.arpa." (lowercase) as a.b.c.d.
func parseReverse(name string) (netip.Addr, bool) {
	rest := strings.TrimSuffix(name, ".in-addr.arpa.")
	var b [4]byte
	for i := 3; i >= 0; i-- {
		var part string
		if i == 0 {
			part = rest
		} else {
			var ok bool
			if part, rest, ok = strings.Cut(rest, "."); !ok {
				return netip.Addr{}, false
			}
		}
		v, ok := octet(part)
		if !ok {
			return netip.Addr{}, false
		}
		b[i] = v
	}
	return netip.AddrFrom4(b), true
}

// octet parses a decimal 0..255 without sign or leading zeros.
func octet(s string) (byte, bool) {
	if s == "" || len(s) > 3 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return byte(n), n <= 255
}
