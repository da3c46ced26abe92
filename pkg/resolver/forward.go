package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ForwardConfig bounds how names outside the cluster are resolved.
type ForwardConfig struct {
	// Attempt is how long one upstream has to answer (UDP, then TCP when
	// the answer was truncated). Default 1 s.
	Attempt time.Duration
	// Timeout bounds a query's whole forwarding, all attempts included;
	// past it the client gets SERVFAIL. Default 3 s, under the 5 s a
	// glibc client waits by default.
	Timeout time.Duration
	// Rounds is how many times the upstreams are tried in turn. Default 2.
	Rounds int
	// MaxInFlight caps the queries waiting for upstreams, over all
	// networks; further ones are dropped, as a busy resolver does. Default 1024.
	MaxInFlight int
	// MaxInFlightPerSource caps them per client address, so that one
	// flooding container cannot take the whole cap. Default 64.
	MaxInFlightPerSource int
	// Dial, if set, opens the connections to the upstreams (NetNS.Dial:
	// in the host's namespace when the agent runs outside it); default
	// the calling process's own.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c *ForwardConfig) defaults() {
	if c.Attempt <= 0 {
		c.Attempt = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 2
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.MaxInFlightPerSource <= 0 {
		c.MaxInFlightPerSource = 64
	}
}

// forwarder sends queries to the upstream resolvers.
type forwarder struct {
	cfg       ForwardConfig
	upstreams atomic.Pointer[[]netip.AddrPort]
	self      atomic.Pointer[[]netip.AddrPort] // our own addresses: never forwarded to
	preferred atomic.Uint32                    // index of the upstream that answered last
	udp, tcp  *dns.Client
	metrics   *Metrics

	mu       sync.Mutex
	inflight int
	perSrc   map[netip.Addr]int
}

func newForwarder(cfg ForwardConfig, m *Metrics) *forwarder {
	cfg.defaults()
	f := &forwarder{cfg: cfg, metrics: m, perSrc: map[netip.Addr]int{},
		udp: &dns.Client{Net: "udp", UDPSize: maxUDPAnswer},
		tcp: &dns.Client{Net: "tcp"},
	}
	f.upstreams.Store(&[]netip.AddrPort{})
	f.self.Store(&[]netip.AddrPort{})
	return f
}

// acquire takes an in-flight slot for src; false when a cap is reached.
func (f *forwarder) acquire(src netip.Addr) (bool, drop) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inflight >= f.cfg.MaxInFlight {
		return false, dropOverload
	}
	if f.perSrc[src] >= f.cfg.MaxInFlightPerSource {
		return false, dropSourceOverload
	}
	f.inflight++
	f.perSrc[src]++
	f.metrics.inflight.Add(1)
	return true, 0
}

func (f *forwarder) release(src netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if f.perSrc[src]--; f.perSrc[src] <= 0 {
		delete(f.perSrc, src)
	}
	f.metrics.inflight.Add(-1)
}

// errUpstream is an upstream's answer that is no answer: SERVFAIL, REFUSED
// or a response to another question.
type errUpstream struct{ reason string }

func (e *errUpstream) Error() string { return "upstream answered " + e.reason }

// resolve asks the upstreams for req's question, in turn, starting with the
// one that answered last, until one answers or the timeout passes. It
// returns the upstream's response, or nil when every attempt failed.
func (f *forwarder) resolve(ctx context.Context, req *dns.Msg) *dns.Msg {
	ups := f.usable()
	if len(ups) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	out := upstreamQuery(req)
	first := int(f.preferred.Load())
	for try := range f.cfg.Rounds * len(ups) {
		i := (first + try) % len(ups)
		resp, err := f.exchange(ctx, out, ups[i])
		if err == nil {
			f.preferred.Store(uint32(i))
			return resp
		}
		f.metrics.upstreamFailed(ups[i], failureReason(err))
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// usable returns the upstreams except our own addresses.
func (f *forwarder) usable() []netip.AddrPort {
	ups, self := *f.upstreams.Load(), *f.self.Load()
	if !slices.ContainsFunc(ups, func(u netip.AddrPort) bool { return slices.Contains(self, u) }) {
		return ups
	}
	return slices.DeleteFunc(slices.Clone(ups), func(u netip.AddrPort) bool { return slices.Contains(self, u) })
}

// upstreamQuery is req's question as this resolver asks it: a fresh ID,
// the client's RD and CD bits and DO bit, and EDNS0 with our buffer size.
func upstreamQuery(req *dns.Msg) *dns.Msg {
	out := new(dns.Msg)
	out.Id = dns.Id()
	out.RecursionDesired = req.RecursionDesired
	out.CheckingDisabled = req.CheckingDisabled
	out.Question = []dns.Question{req.Question[0]}
	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	out.SetEdns0(maxUDPAnswer, do)
	return out
}

// exchange is one attempt with one upstream: UDP, TCP again when the
// answer was truncated.
func (f *forwarder) exchange(ctx context.Context, out *dns.Msg, up netip.AddrPort) (*dns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, f.cfg.Attempt)
	defer cancel()
	resp, err := f.try(actx, f.udp, out, up)
	if err == nil && resp.Truncated {
		tctx, tcancel := context.WithTimeout(ctx, f.cfg.Attempt)
		defer tcancel()
		resp, err = f.try(tctx, f.tcp, out, up)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case resp.Rcode == dns.RcodeServerFailure:
		return nil, &errUpstream{"servfail"}
	case resp.Rcode == dns.RcodeRefused:
		return nil, &errUpstream{"refused"}
	case len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, out.Question[0].Name) ||
		resp.Question[0].Qtype != out.Question[0].Qtype:
		return nil, &errUpstream{"mismatch"}
	}
	return resp, nil
}

// try sends out to up with client c, on a connection of ForwardConfig.Dial
// when one is set.
func (f *forwarder) try(ctx context.Context, c *dns.Client, out *dns.Msg, up netip.AddrPort) (*dns.Msg, error) {
	if f.cfg.Dial == nil {
		resp, _, err := c.ExchangeContext(ctx, out, up.String())
		return resp, err
	}
	conn, err := f.cfg.Dial(ctx, c.Net, up.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	resp, _, err := c.ExchangeWithConnContext(ctx, out, &dns.Conn{Conn: conn, UDPSize: c.UDPSize})
	return resp, err
}

func failureReason(err error) string {
	var ue *errUpstream
	var ne net.Error
	switch {
	case errors.As(err, &ue):
		return ue.reason
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

// relay turns an upstream's response into the answer to req: the client's
// ID and question (as it spelled it), without the upstream's OPT record.
func relay(req, resp *dns.Msg) *dns.Msg {
	resp.Id = req.Id
	resp.Question = []dns.Question{req.Question[0]}
	resp.RecursionAvailable = true
	resp.Extra = slices.DeleteFunc(resp.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	return resp
}
