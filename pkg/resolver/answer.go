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
	gateway netip.Addr
	subnet  netip.Prefix
	stats   *netStats
}

// answerer decides the answer to one parsed query from the table alone; it
// has no side effects besides the rotation of answer order.
type answerer struct {
	names  *Table
	domain string // lowercase, fully qualified: "ofctl.internal."
	ttl    uint32 // of local records, and the negative TTL in the SOA
	soa    *dns.SOA
}

func newAnswerer(names *Table, domain string, ttl uint32) *answerer {
	return &answerer{names: names, domain: domain, ttl: ttl, soa: &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: ttl, // RFC 2308: negative answers are cached min(SOA TTL, MINIMUM)
	}}
}

// answer returns the response to req, received on nw's address from src,
// or KindForwarded and no response when req is to be sent upstream.
func (a *answerer) answer(req *dns.Msg, nw *network, src netip.Addr) (*dns.Msg, Kind) {
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return errorReply(req, dns.RcodeNotImplemented), KindNotImp
	case len(req.Question) != 1:
		return errorReply(req, dns.RcodeFormatError), KindFormErr
	case !nw.subnet.Contains(src):
		return errorReply(req, dns.RcodeRefused), KindRefused
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		r := errorReply(req, dns.RcodeBadVers) // RFC 6891 6.1.3; an extended rcode, sent with an OPT
		r.SetEdns0(maxUDPAnswer, false)
		return r, KindFormErr
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET || unsupportedType(q.Qtype) {
		return errorReply(req, dns.RcodeNotImplemented), KindNotImp
	}
	name := strings.ToLower(q.Name)
	switch {
	case dns.CountLabel(name) == 1:
		return a.byName(req, nw, name[:len(name)-1], nil)
	case name == a.domain || dns.IsSubDomain(a.domain, name):
		return a.inDomain(req, nw, name)
	case strings.HasSuffix(name, ".in-addr.arpa."):
		if addr, ok := parseReverse(name); ok && nw.subnet.Contains(addr) {
			return a.byAddr(req, nw, addr)
		}
	}
	return nil, KindForwarded
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
func (a *answerer) inDomain(req *dns.Msg, nw *network, name string) (*dns.Msg, Kind) {
	if name == a.domain || name == nw.zone {
		r := reply(req)
		if req.Question[0].Qtype == dns.TypeSOA && name == a.domain {
			r.Answer = append(r.Answer, a.soa)
		} else {
			r.Ns = append(r.Ns, a.soa)
		}
		return r, KindLocal
	}
	if nw.zone != "" {
		if label, ok := strings.CutSuffix(name, "."+nw.zone); ok && !strings.Contains(label, ".") {
			return a.byName(req, nw, label, a.soa)
		}
	}
	return a.negative(req, a.soa)
}

// byName answers label's addresses in nw; soa goes with negative answers.
func (a *answerer) byName(req *dns.Msg, nw *network, label string, soa *dns.SOA) (*dns.Msg, Kind) {
	var buf [8]netip.Addr
	addrs := a.names.lookup(nw.name, label, buf[:0])
	if len(addrs) == 0 {
		return a.negative(req, soa)
	}
	r := reply(req)
	q := req.Question[0]
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeANY {
		if soa != nil {
			r.Ns = append(r.Ns, soa) // NODATA: the name exists, without this type
		}
		return r, KindLocal
	}
	r.Answer = make([]dns.RR, 0, len(addrs))
	for _, addr := range addrs {
		r.Answer = append(r.Answer, &dns.A{Hdr: a.header(q.Name, dns.TypeA), A: addr.AsSlice()})
	}
	return r, KindLocal
}

// byAddr answers a reverse (PTR) query for an address of nw's subnet.
func (a *answerer) byAddr(req *dns.Msg, nw *network, addr netip.Addr) (*dns.Msg, Kind) {
	var buf [4]string
	names := a.names.reverse(nw.name, addr, buf[:0])
	if len(names) == 0 {
		return a.negative(req, nil)
	}
	r := reply(req)
	q := req.Question[0]
	if q.Qtype != dns.TypePTR && q.Qtype != dns.TypeANY {
		return r, KindLocal
	}
	for _, n := range names {
		target := n + "."
		if nw.zone != "" {
			target = n + "." + nw.zone
		}
		r.Answer = append(r.Answer, &dns.PTR{Hdr: a.header(q.Name, dns.TypePTR), Ptr: target})
	}
	return r, KindLocal
}

// negative is NXDOMAIN, or SERVFAIL while the names are not all loaded.
func (a *answerer) negative(req *dns.Msg, soa *dns.SOA) (*dns.Msg, Kind) {
	if !a.names.Synced() {
		return errorReply(req, dns.RcodeServerFailure), KindServFail
	}
	r := reply(req)
	r.Rcode = dns.RcodeNameError
	if soa != nil {
		r.Ns = append(r.Ns, soa)
	}
	return r, KindNXDomain
}

func (a *answerer) header(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: a.ttl}
}

// reply starts an authoritative answer to req (the question as asked, case
// kept; recursion available since other names are forwarded).
func reply(req *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(req)
	r.Authoritative = true
	r.RecursionAvailable = true
	return r
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
