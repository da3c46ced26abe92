package resolver

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// BenchmarkResolverVsDnsmasq serves 10,000 names from the resolver (a real
// process, as in the integration tests) and from dnsmasq (a hosts file with
// the same names) in one host namespace, and measures both from a client
// namespace joined by a veth (kernel path, no switch in between):
//   - throughput: dnsperf, as fast as it can with 100 queries outstanding,
//     rounds alternating between the two servers;
//   - latency at a fixed rate: a Go load generator sending A queries for
//     random names at benchRate per second, p50/p99/max of the answers.
//
// bench/README.md has the results and the command.
func BenchmarkResolverVsDnsmasq(b *testing.B) {
	testbed.Require(b)
	testbed.RequireTools(b, "dnsperf", "dnsmasq")
	bed := newBenchBed(b, 10000)
	report("load average before: %s", loadavg())
	servers := []struct {
		name string
		addr netip.Addr
	}{{"resolver", bed.ours}, {"dnsmasq", bed.theirs}}
	qps, p99 := map[string][]float64{}, map[string][]float64{}
	for round := range benchRounds {
		for _, s := range servers {
			q := dnsperf(b, bed.client, s.addr, bed.queryFile)
			qps[s.name] = append(qps[s.name], q)
			report("round %d: %s %.0f qps (dnsperf)", round+1, s.name, q)
		}
	}
	for round := range benchRounds {
		for _, s := range servers {
			lat := loadgen(b, bed.client, netip.AddrPortFrom(s.addr, DefaultPort), bed.qnames, benchRate, 5*time.Second)
			report("round %d: %s at %d qps: %v", round+1, s.name, benchRate, lat)
			p99[s.name] = append(p99[s.name], lat.p99.Seconds()*1e3)
		}
	}
	ratios := make([]float64, benchRounds)
	for i := range ratios {
		ratios[i] = qps["resolver"][i] / qps["dnsmasq"][i]
	}
	report("throughput resolver/dnsmasq per round: %.2f; medians %.0f / %.0f qps; load average after: %s",
		ratios, median(qps["resolver"]), median(qps["dnsmasq"]), loadavg())
	for _, s := range servers {
		b.ReportMetric(median(p99[s.name]), s.name+"-p99-ms")
		b.ReportMetric(median(qps[s.name]), s.name+"-qps")
	}
	b.ReportMetric(median(ratios), "qps-ratio")
}

// benchBed is a host namespace serving the same names from the resolver
// (ours) and dnsmasq (theirs), and a client namespace on a veth.
type benchBed struct {
	client       testbed.NetNS
	ours, theirs netip.Addr
	qnames       []string // the names, fully qualified, in random order
	queryFile    string   // the same for dnsperf
}

func newBenchBed(b *testing.B, names int) *benchBed {
	node := testbed.NewNode(b, "dnsbench")
	client := node.AddContainer(b, "client", testbed.ContainerOpts{Addr: netip.MustParsePrefix("10.100.0.5/16")})
	bed := &benchBed{client: client.NS, ours: netip.MustParseAddr("10.100.1.1"), theirs: netip.MustParseAddr("10.100.1.2")}
	for _, a := range []netip.Addr{bed.ours, bed.theirs} {
		node.Exec(b, "ip", "addr", "add", a.String()+"/16", "dev", client.HostIf)
	}
	cfg := &processConfig{Port: DefaultPort, Upstreams: []netip.AddrPort{}, Names: map[string][]Record{},
		Networks: []processNetwork{{"blue", bed.ours, netip.MustParsePrefix("10.100.0.0/16")}}}
	var hosts, queries strings.Builder
	for i := range names {
		name, addr := fmt.Sprintf("n%d", i), netip.AddrFrom4([4]byte{10, 100, byte(2 + i/250), byte(1 + i%250)})
		cfg.Names["blue"] = append(cfg.Names["blue"], Record{Key: name, Name: name, Addr: addr})
		fmt.Fprintf(&hosts, "%s %s\n", addr, name)
		bed.qnames = append(bed.qnames, name+".")
	}
	rand.Shuffle(len(bed.qnames), func(i, j int) { bed.qnames[i], bed.qnames[j] = bed.qnames[j], bed.qnames[i] })
	for _, q := range bed.qnames {
		fmt.Fprintf(&queries, "%s A\n", strings.TrimSuffix(q, "."))
	}
	dir := b.TempDir()
	hostsFile, config := filepath.Join(dir, "hosts"), filepath.Join(dir, "resolver.json")
	bed.queryFile = filepath.Join(dir, "queries")
	writeFile(b, hostsFile, hosts.String())
	writeFile(b, bed.queryFile, queries.String())
	writeProcessConfig(b, config, cfg)
	startResolver(b, node.NS, config)
	startDnsmasq(b, node.NS, bed.theirs.String(), hostsFile, "", "--cache-size=0")
	for _, srv := range []netip.Addr{bed.ours, bed.theirs} { // both answer before measuring
		if r := dig(b, bed.client, srv, "n42"); r.status != "NOERROR" || len(r.answers) != 1 {
			b.Fatalf("%v does not answer n42: %s", srv, r.out)
		}
	}
	return bed
}

const (
	benchRounds = 3
	benchRate   = 5000 // queries per second for the latency measurement
)

// report prints a result line (b.Log keeps only 10 lines of a benchmark).
func report(format string, args ...any) { fmt.Printf("resolver-bench: "+format+"\n", args...) }

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var qpsRE = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)

// dnsperf runs dnsperf from ns against server for 10 s and returns its
// queries per second.
func dnsperf(t testing.TB, ns testbed.NetNS, server netip.Addr, queries string) float64 {
	t.Helper()
	out, err := ns.Exec("dnsperf", "-s", server.String(), "-d", queries, "-l", "10", "-c", "8", "-q", "100", "-t", "2")
	m := qpsRE.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("dnsperf against %v: %v\n%s", server, err, out)
	}
	if lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindStringSubmatch(out); lost != nil && lost[1] != "0" {
		t.Logf("dnsperf against %v lost %s queries", server, lost[1])
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// latencies summarises a fixed-rate run.
type latencies struct {
	sent, answered int
	p50, p99, max  time.Duration
}

func (l latencies) String() string {
	return fmt.Sprintf("%d sent, %d answered, p50 %v, p99 %v, max %v", l.sent, l.answered,
		l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond), l.max.Round(time.Microsecond))
}

// loadgen sends A queries for names (in turn) from a UDP socket in ns to
// server at rate per second for d, and measures each answer's latency.
func loadgen(t testing.TB, ns testbed.NetNS, server netip.AddrPort, names []string, rate int, d time.Duration) latencies {
	t.Helper()
	conn := dialUDPIn(t, ns, server)
	defer conn.Close()
	total := rate * int(d/time.Second)
	if total > 65536 {
		t.Fatalf("%d queries: IDs would repeat", total)
	}
	sentAt := make([]time.Time, total)
	lat := make([]time.Duration, 0, total)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for len(lat) < total {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if id := int(binary.BigEndian.Uint16(buf)); n >= headerLen && id < total && !sentAt[id].IsZero() {
				lat = append(lat, time.Since(sentAt[id]))
			}
		}
	}()
	msgs := make([][]byte, len(names))
	for i, n := range names {
		msgs[i] = packQ(t, 0, n, dns.TypeA, nil)
	}
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		m := msgs[i%len(msgs)]
		binary.BigEndian.PutUint16(m, uint16(i))
		sentAt[i] = time.Now()
		_, _ = conn.Write(m)
	}
	<-done
	slices.Sort(lat)
	l := latencies{sent: total, answered: len(lat)}
	if len(lat) > 0 {
		l.p50, l.p99, l.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return l
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// BenchmarkTableUpdate: renaming one endpoint (Set with a new name, the old
// one removed) costs the same whatever the table's size.
func BenchmarkTableUpdate(b *testing.B) {
	for _, size := range []int{100, 10000, 100000} {
		b.Run(fmt.Sprintf("names=%d", size), func(b *testing.B) {
			tb := filledTable(b, size)
			// Records prepared outside the timer: the loop times Set alone.
			recs := make([][2]Record, size)
			for k := range recs {
				for j := range 2 {
					recs[k][j] = Record{Key: fmt.Sprint(k), Name: fmt.Sprintf("r%d-%d", k, j), Addr: tableAddr(k)}
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if err := tb.Set("blue", recs[i%size][(i/size)&1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTableLookupParallel: queries read the table from every core
// while one writer changes a name every 10 lookups.
func BenchmarkTableLookupParallel(b *testing.B) {
	const size = 10000
	tb := filledTable(b, size)
	names := make([]string, size)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]netip.Addr, 0, 8)
		i := rand.IntN(size)
		for pb.Next() {
			i = (i + 1) % size
			if i%10 == 0 {
				_ = tb.Set("blue", Record{Key: "churn", Name: names[i], Addr: tableAddr(i)})
			}
			if len(tb.lookup("blue", names[i], buf[:0])) == 0 {
				b.Fatal("miss")
			}
		}
	})
}

func filledTable(b *testing.B, size int) *Table {
	tb := NewTable()
	for i := range size {
		if err := tb.Set("blue", Record{Key: fmt.Sprint(i), Name: fmt.Sprintf("n%d", i), Addr: tableAddr(i)}); err != nil {
			b.Fatal(err)
		}
	}
	return tb
}

func tableAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// BenchmarkQueryPath: one local query through parse, answer and pack, as a
// UDP reader does it (no socket).
func BenchmarkQueryPath(b *testing.B) {
	s, err := New(Config{Logger: quiet(), Upstreams: []netip.AddrPort{}})
	if err != nil {
		b.Fatal(err)
	}
	s.Names().SetSynced(true)
	nw := s.newNetwork("blue", ip("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/8"))
	tb := s.Names()
	for i := range 10000 {
		_ = tb.Set("blue", Record{Key: fmt.Sprint(i), Name: fmt.Sprintf("n%d", i), Addr: tableAddr(i)})
	}
	raw := packQ(b, 7, "n4242.blue.ofctl.internal.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) })
	sc := newScratch()
	src := netip.MustParseAddrPort("10.0.0.5:5353")
	for _, path := range []string{"fast", "general"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x := exchange{nw: nw, src: src, start: time.Now()}
				var out []byte
				if path == "fast" {
					out, _ = s.receive(raw, &x, sc)
				} else {
					out, _ = s.receiveGeneral(raw, &x, sc)
				}
				if len(out) == 0 {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// BenchmarkServeUDP: one local query through a real socket and the serving
// loop, client and server in this process (allocations count both).
func BenchmarkServeUDP(b *testing.B) {
	s := newTestServer(b, Config{UDPReaders: 1})
	loadNames(b, s)
	c := rawConn(b, s, blueGW, blueC)
	q := packQ(b, 1, "web.", dns.TypeA, nil)
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(q); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
