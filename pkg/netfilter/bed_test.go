package netfilter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The kernel test bed: a "host" namespace whose packet filter the Keeper
// keeps, an "outside" namespace behind the host's uplink (TEST-NET-2,
// routed to nothing but the uplink's subnet: it cannot reach a container
// subnet unless the host translates), and containers, each a namespace
// joined to the host by a veth pair whose host end plays the gateway port
// (the OVS internal port of the real design) with the gateway address.
//
//	container blue1 10.100.1.5/16 --veth-- gw-blue 10.100.0.1/16 [host] up0 198.51.100.1/24 --veth-- eth0 198.51.100.2,.3/24 [outside]
//	container red1  10.200.1.5/16 --veth-- gw-red  10.200.0.1/16 [host]
const (
	uplinkIf   = "up0"
	hostAddr   = "198.51.100.1"
	outsideIP  = "198.51.100.2"
	outsideIP2 = "198.51.100.3"
)

type bed struct {
	host, outside testbed.NetNS
	ctrs          map[string]*ctr
}

// ctr is a container: its namespace, address and gateway.
type ctr struct {
	ns testbed.NetNS
	ip netip.Addr
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newBed builds the test bed. IPv4 forwarding is off in the host (all and
// default), so that only what the Keeper turns on forwards.
func newBed(t *testing.T) *bed {
	t.Helper()
	testbed.Require(t)
	testbed.RequireTools(t, "ip", "nft", "iptables", "tcpdump", "curl", "ping", "sysctl")
	b := &bed{host: testbed.NewNetNS(t, "nfhost"), outside: testbed.NewNetNS(t, "nfout"), ctrs: map[string]*ctr{}}
	b.host.MustExec(t, "sysctl", "-q", "-w", "net.ipv4.conf.all.forwarding=0", "net.ipv4.conf.default.forwarding=0")
	b.host.MustExec(t, "ip", "link", "add", uplinkIf, "type", "veth", "peer", "name", "eth0", "netns", string(b.outside))
	b.host.MustExec(t, "ip", "addr", "add", hostAddr+"/24", "dev", uplinkIf)
	b.host.MustExec(t, "ip", "link", "set", uplinkIf, "up")
	b.host.MustExec(t, "ip", "route", "add", "default", "via", outsideIP)
	b.outside.MustExec(t, "ip", "addr", "add", outsideIP+"/24", "dev", "eth0")
	b.outside.MustExec(t, "ip", "addr", "add", outsideIP2+"/24", "dev", "eth0")
	b.outside.MustExec(t, "ip", "link", "set", "eth0", "up")
	b.addContainer(t, "blue1", blueNet, "10.100.1.5")
	b.addContainer(t, "red1", redNet, "10.200.1.5")
	return b
}

// addContainer makes a container on network n's gateway port (the first
// container of n creates the port, with the subnet's first address).
func (b *bed) addContainer(t *testing.T, name string, n Network, ip string) *ctr {
	t.Helper()
	c := &ctr{ns: testbed.NewNetNS(t, name), ip: netip.MustParseAddr(ip)}
	gw := n.Subnet.Addr().Next()
	bits := strconv.Itoa(n.Subnet.Bits())
	b.host.MustExec(t, "ip", "link", "add", n.Gateway, "type", "veth", "peer", "name", "eth0", "netns", string(c.ns))
	b.host.MustExec(t, "ip", "addr", "add", gw.String()+"/"+bits, "dev", n.Gateway)
	b.host.MustExec(t, "ip", "link", "set", n.Gateway, "up")
	c.ns.MustExec(t, "ip", "addr", "add", ip+"/"+bits, "dev", "eth0")
	c.ns.MustExec(t, "ip", "link", "set", "eth0", "up")
	c.ns.MustExec(t, "ip", "route", "add", "default", "via", gw.String())
	b.ctrs[name] = c
	return c
}

// keeper returns a Keeper of the host's packet filter, closed at the end.
func (b *bed) keeper(t *testing.T) *Keeper {
	t.Helper()
	k, err := New(Options{NetNS: b.host.Path(), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// run starts k.Run until the test ends.
func run(t *testing.T, k *Keeper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// baseState serves blue and red, NAT on.
func baseState() State { return State{Networks: []Network{blueNet, redNet}} }

// apply applies s and fails on refusals or errors.
func apply(t *testing.T, k *Keeper, s State) {
	t.Helper()
	refused, err := k.Apply(s)
	if err != nil || len(refused) > 0 {
		t.Fatalf("Apply: refused %v, err %v", refused, err)
	}
}

// ping reports whether count pings from ns to dst were all answered.
func ping(ns testbed.NetNS, dst string, count int) (bool, string) {
	out, err := ns.Exec("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.1", "-W", "1", dst)
	return err == nil, out
}

// inNS runs fn in ns (sockets it opens belong to ns).
func inNS(t *testing.T, ns testbed.NetNS, fn func() error) {
	t.Helper()
	if err := inNetNS(ns.Path(), fn); err != nil {
		t.Fatal(err)
	}
}

// listen opens a listener inside ns, closed at the end of the test.
func listen(t *testing.T, ns testbed.NetNS, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	inNS(t, ns, func() (err error) { l, err = net.Listen(network, addr); return err })
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// serveHTTP serves body at /file and "hello from <name>" at / inside ns.
func serveHTTP(t *testing.T, ns testbed.NetNS, addr, name string, body []byte) {
	t.Helper()
	l := listen(t, ns, "tcp", addr)
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s", name) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// curl fetches url from ns.
func curl(ns testbed.NetNS, url string, extra ...string) (string, error) {
	return ns.Exec(append([]string{"curl", "-sS", "--max-time", "5", url}, extra...)...)
}

// dial opens a TCP connection from inside ns.
func dial(t *testing.T, ns testbed.NetNS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	inNS(t, ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, 5*time.Second); return err })
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// nft runs the nft CLI in the host: the independent observer.
func (b *bed) nft(t *testing.T, args ...string) string {
	t.Helper()
	return b.host.MustExec(t, append([]string{"nft"}, args...)...)
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

// ruleCounter reads, with nft, the packets counted by the rule with that
// comment in a chain of the agent's table.
func (b *bed) ruleCounter(t *testing.T, chain, comment string) uint64 {
	t.Helper()
	for _, line := range strings.Split(b.nft(t, "list", "chain", "ip", DefaultTable, chain), "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), fmt.Sprintf("comment %q", comment)) {
			if m := counterRE.FindStringSubmatch(line); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 64)
				return n
			}
		}
	}
	t.Fatalf("no counted rule %q in chain %s", comment, chain)
	return 0
}

// capture runs a command in ns (tcpdump, nft monitor) and records the
// lines it prints, with the time each arrived, until stop.
type capture struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []line
	done  chan struct{}
}

type line struct {
	at   time.Time
	text string
}

func startCommand(t *testing.T, ns testbed.NetNS, args ...string) (*capture, io.Reader) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", string(ns)}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &capture{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() { c.stop() })
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, line{time.Now(), sc.Text()})
			c.mu.Unlock()
		}
	}()
	return c, stderr
}

// startCapture runs tcpdump in ns on ifname and waits until it listens.
func startCapture(t *testing.T, ns testbed.NetNS, ifname, filter string) *capture {
	t.Helper()
	c, stderr := startCommand(t, ns, "tcpdump", "-n", "-l", "-i", ifname, filter)
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-listening:
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump did not start listening")
	}
	return c
}

// since returns the lines from index i on.
func (c *capture) since(i int) []line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines[min(i, len(c.lines)):])
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// stop ends the command (SIGINT: tcpdump flushes its output) and returns
// its lines' text.
func (c *capture) stop() []string {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		<-c.done
		_ = c.cmd.Wait()
	}
	var out []string
	for _, l := range c.since(0) {
		out = append(out, l.text)
	}
	return out
}

var srcRE = regexp.MustCompile(`^\S+ IP (\d+\.\d+\.\d+\.\d+)`)

// sources counts the IPv4 source addresses of tcpdump lines.
func sources(lines []string) map[string]int {
	out := map[string]int{}
	for _, l := range lines {
		if m := srcRE.FindStringSubmatch(l); m != nil {
			out[m[1]]++
		}
	}
	return out
}
