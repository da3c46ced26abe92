package resolver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and fixed sizes.
const (
	// DefaultDomain is the cluster domain: names are <name>.<network>.<domain>.
	// ".internal" is reserved for private use (ICANN, 2024) and, unlike
	// ".local", is not claimed by multicast DNS (RFC 6762), whose resolvers
	// (nss-mdns, systemd-resolved, Avahi) would never send it to us.
	DefaultDomain = "ofctl.internal"
	// DefaultTTL of the answers about local names: short, because
	// containers come and go, and most containers have no cache anyway.
	DefaultTTL = 5 * time.Second
	// DefaultPort is where clients send their queries.
	DefaultPort = 53

	headerLen    = 12
	maxUDPAnswer = 1232 // our EDNS buffer size and largest UDP answer (DNS flag day 2020)
	maxQuery     = 4096 // no stub resolver's query is larger: bigger ones are dropped

	tcpFirstRead = 2 * time.Second // a new TCP connection must send its query within
	tcpIdle      = 8 * time.Second // between queries on one connection
	logEvery     = 10 * time.Second
)

// ListenFunc opens the UDP and TCP sockets of one network's resolver.
type ListenFunc func(addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	Domain     string           // cluster domain; DefaultDomain
	TTL        time.Duration    // of local answers and negative caching; DefaultTTL
	Port       uint16           // DefaultPort
	Upstreams  []netip.AddrPort // nil: the nameservers of ResolvConf
	ResolvConf string           // DefaultResolvConf
	Forward    ForwardConfig
	UDPReaders int // goroutines reading each network's UDP socket; max(2, GOMAXPROCS)
	// MaxTCPConns caps the open TCP connections over all networks; more are
	// closed at once. Default 256.
	MaxTCPConns int
	// Listen opens the sockets; default ListenFreebind (in the calling
	// process's network namespace).
	Listen ListenFunc
	Names  *Table // the names answered; nil: a new table (Server.Names)
	Logger *slog.Logger
}

// Server is the resolver of every network on this host: one UDP and one TCP
// socket on each network's gateway address (see the package doc).
type Server struct {
	cfg      Config
	names    *Table
	ans      *answerer
	fwd      *forwarder
	metrics  *Metrics
	log      *slog.Logger
	tcpSlots chan struct{}
	logged   [int(numKinds) + int(numDrops)]atomic.Int64 // unix nanos of the last log line per event

	mu     sync.Mutex
	nets   map[string]*listener
	closed bool
}

// New returns a server serving no network yet (SetNetwork). It reads the
// upstream resolvers now when none are configured; without any, names
// outside the cluster get SERVFAIL (logged).
func New(cfg Config) (*Server, error) {
	domain, err := canonicalDomain(cfg.Domain)
	if err != nil {
		return nil, err
	}
	cfg = withDefaults(cfg)
	s := &Server{cfg: cfg, names: cfg.Names, log: cfg.Logger, nets: map[string]*listener{},
		tcpSlots: make(chan struct{}, cfg.MaxTCPConns)}
	s.metrics = newMetrics(s.names)
	s.ans = newAnswerer(s.names, domain, uint32(cfg.TTL/time.Second))
	s.fwd = newForwarder(cfg.Forward, s.metrics)
	ups := cfg.Upstreams
	if ups == nil {
		if ups, err = ReadResolvConf(cfg.ResolvConf); err != nil {
			s.log.Warn("dns: no upstream resolvers: names outside the cluster get SERVFAIL", "err", err)
		}
	}
	s.SetUpstreams(ups)
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if cfg.UDPReaders <= 0 {
		cfg.UDPReaders = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 256
	}
	if cfg.Listen == nil {
		cfg.Listen = ListenFreebind
	}
	if cfg.Names == nil {
		cfg.Names = NewTable()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// canonicalDomain checks a cluster domain and returns it lowercase and
// fully qualified.
func canonicalDomain(d string) (string, error) {
	if d == "" {
		d = DefaultDomain
	}
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, label := range strings.Split(d, ".") {
		if err := ValidateName(label); err != nil {
			return "", fmt.Errorf("cluster domain %q: %w", d, err)
		}
	}
	if len(d) > 200 {
		return "", fmt.Errorf("cluster domain %q: too long to leave room for <name>.<network>", d)
	}
	return d + ".", nil
}

// Names returns the table of names the server answers.
func (s *Server) Names() *Table { return s.names }

// Metrics returns the collector of the resolver's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Domain returns the cluster domain, fully qualified ("ofctl.internal.").
func (s *Server) Domain() string { return s.ans.domain }

// SetUpstreams replaces the upstream resolvers. Addresses this server
// listens on are never forwarded to.
func (s *Server) SetUpstreams(ups []netip.AddrPort) {
	ups = slices.Clone(ups)
	s.fwd.upstreams.Store(&ups)
	s.fwd.preferred.Store(0)
}

// Upstreams returns the upstream resolvers in use (own addresses excluded).
func (s *Server) Upstreams() []netip.AddrPort { return s.fwd.usable() }

// SetNetwork serves network's names on gateway (its address in this host's
// namespace, inside subnet), on UDP and TCP port Config.Port, answering only
// sources inside subnet. Calling it again with the same gateway applies a
// new subnet without closing the sockets; a new gateway moves them.
func (s *Server) SetNetwork(name string, gateway netip.Addr, subnet netip.Prefix) error {
	if err := checkNetwork(name, gateway, subnet); err != nil {
		return err
	}
	nw := s.newNetwork(name, gateway, subnet)
	addr := netip.AddrPortFrom(gateway, s.cfg.Port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dns: server closed")
	}
	for other, l := range s.nets {
		if other != name && l.addr == addr {
			return fmt.Errorf("dns: network %s: gateway %v already serves network %s", name, gateway, other)
		}
	}
	if l := s.nets[name]; l != nil {
		if l.addr == addr {
			l.nw.Store(nw)
			return nil
		}
		l.close()
		delete(s.nets, name)
	}
	l, err := s.open(addr, nw)
	if err != nil {
		s.updateSelfLocked()
		return fmt.Errorf("dns: network %s: %w", name, err)
	}
	s.nets[name] = l
	s.updateSelfLocked()
	s.log.Info("dns: serving network", "network", name, "addr", addr, "subnet", nw.subnet, "zone", nw.zone)
	return nil
}

// newNetwork describes a network; its zone is <name>.<domain> when the
// name is a DNS label.
func (s *Server) newNetwork(name string, gateway netip.Addr, subnet netip.Prefix) *network {
	nw := &network{name: name, gateway: gateway, subnet: subnet.Masked(), stats: s.metrics.network(name)}
	if ValidateName(name) == nil {
		nw.zone = strings.ToLower(name) + "." + s.ans.domain
		nw.dotZone = "." + nw.zone
	} else {
		s.log.Warn("dns: network name is not a DNS label: only bare names are answered in it", "network", name)
	}
	return nw
}

func checkNetwork(name string, gateway netip.Addr, subnet netip.Prefix) error {
	switch {
	case name == "":
		return errors.New("dns: empty network name")
	case !gateway.Is4():
		return fmt.Errorf("dns: network %s: gateway %v is not an IPv4 address", name, gateway)
	case !subnet.IsValid() || !subnet.Addr().Is4():
		return fmt.Errorf("dns: network %s: subnet %v is not an IPv4 prefix", name, subnet)
	case !subnet.Contains(gateway):
		return fmt.Errorf("dns: network %s: gateway %v is outside subnet %v", name, gateway, subnet)
	}
	return nil
}

// RemoveNetwork stops serving network (its names stay in the table).
func (s *Server) RemoveNetwork(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.nets[name]; l != nil {
		l.close()
		delete(s.nets, name)
		s.updateSelfLocked()
		s.metrics.forget(name)
		s.log.Info("dns: network no longer served", "network", name)
	}
}

// Close stops serving every network; forwarded queries in flight are
// abandoned.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for name, l := range s.nets {
		l.close()
		delete(s.nets, name)
	}
	return nil
}

// updateSelfLocked tells the forwarder which addresses are our own.
func (s *Server) updateSelfLocked() {
	self := make([]netip.AddrPort, 0, len(s.nets))
	for _, l := range s.nets {
		self = append(self, l.addr)
	}
	s.fwd.self.Store(&self)
}

// NetworkNames is what one network's resolver answers (for /debug/names).
type NetworkNames struct {
	Network string         `json:"network"`
	Addr    netip.AddrPort `json:"addr"`   // where it listens
	Subnet  netip.Prefix   `json:"subnet"` // the sources it answers
	Zone    string         `json:"zone"`   // "<network>.<domain>.", "" when the network name is not a DNS label
	Names   []NameAddrs    `json:"names"`
}

// Networks lists the networks served, sorted, with their names.
func (s *Server) Networks() []NetworkNames {
	s.mu.Lock()
	out := make([]NetworkNames, 0, len(s.nets))
	for _, l := range s.nets {
		nw := l.nw.Load()
		out = append(out, NetworkNames{Network: nw.name, Addr: l.addr, Subnet: nw.subnet, Zone: nw.zone})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b NetworkNames) int { return strings.Compare(a.Network, b.Network) })
	for i := range out {
		out[i].Names = s.names.List(out[i].Network)
	}
	return out
}

// note logs a bad input or a failure at most once per logEvery per event.
func (s *Server) note(event int, msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.logged[event].Load()
	if now-last < int64(logEvery) || !s.logged[event].CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}
