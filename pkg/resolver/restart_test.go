package resolver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// inNetNS runs fn on a thread that is in ns; sockets fn opens stay in ns.
func inNetNS(t testing.TB, ns testbed.NetNS, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine, whatever its namespace
		target, err := netns.GetFromPath(ns.Path())
		if err != nil {
			t.Error(err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// dialUDPIn returns a UDP socket in ns connected to server (a container's
// client socket; ICMP errors come back on it).
func dialUDPIn(t testing.TB, ns testbed.NetNS, server netip.AddrPort) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	inNetNS(t, ns, func() {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
		if err != nil {
			t.Error(err)
			return
		}
		_ = c.SetReadBuffer(4 << 20)
		conn = c
	})
	if conn == nil {
		t.FailNow()
	}
	return conn
}

// probeResult is one query of the prober.
type probeResult struct {
	at      time.Time
	outcome string        // ok, refused (ICMP port unreachable), timeout
	took    time.Duration // until the answer, the refusal or the timeout
}

// prober is a running probe: results waits for it to end; so far reads the
// results up to now.
type prober struct {
	results, soFar func() []probeResult
}

// answeredSince reports whether the last n probes so far were answered,
// all sent after t.
func (p prober) answeredSince(t time.Time, n int) bool {
	res := p.soFar()
	if len(res) < n {
		return false
	}
	for _, r := range res[len(res)-n:] {
		if r.outcome != "ok" || r.at.Before(t) {
			return false
		}
	}
	return true
}

// probe sends an A query for name to server from a socket in ns every
// interval until stop is closed, waiting at most wait for each answer.
func probe(t testing.TB, ns testbed.NetNS, server netip.AddrPort, name string, interval, wait time.Duration, stop chan struct{}) prober {
	t.Helper()
	conn := dialUDPIn(t, ns, server)
	var mu sync.Mutex
	var results []probeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		buf := make([]byte, 1500)
		for id := uint16(1); ; id++ {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			r := probeResult{at: time.Now(), outcome: probeOnce(conn, id, name, wait, buf)}
			r.took = time.Since(r.at)
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}
	}()
	soFar := func() []probeResult {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(results)
	}
	return prober{
		results: func() []probeResult { <-done; return soFar() },
		soFar:   soFar,
	}
}

func probeOnce(c *net.UDPConn, id uint16, name string, wait time.Duration, buf []byte) string {
	m := question(name, dns.TypeA)
	m.Id = id
	b, _ := m.Pack()
	if _, err := c.Write(b); err != nil {
		return outcomeOf(err)
	}
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return outcomeOf(err)
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) == nil && r.Id == id && len(r.Answer) > 0 {
			return "ok"
		}
	}
}

func outcomeOf(err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "refused"
	}
	return "timeout"
}

// TestRestartGap restarts the resolver process (SIGTERM, then a new
// process, as a service manager does) while a container queries it every
// 5 ms, and measures how long the address goes unanswered. Then it shows
// what the C library does while nothing listens: an ICMP port unreachable
// fails its attempt at once, so resolv.conf retries do not wait a gap out.
func TestRestartGap(t *testing.T) {
	b := newDNSBed(t)
	p, _ := startResolver(t, b.node.NS, b.config)
	c1 := b.containers["c1"].NS
	server := netip.AddrPortFrom(gatewayOf("blue"), DefaultPort)
	if r := dig(t, c1, server.Addr(), "c2"); !r.is("NOERROR", "10.100.0.6") { // also resolves the neighbours before the probes
		t.Fatalf("before the restart: %s", r.out)
	}
	stop := make(chan struct{})
	probes := probe(t, c1, server, "c2.", 5*time.Millisecond, 200*time.Millisecond, stop)
	began := time.Now()
	testbed.Eventually(t, 5*time.Second, func() bool { return probes.answeredSince(began, 5) }, "probes unanswered before the restart")

	term := time.Now()
	closed := p.stop(t)
	// The probes must see the gap: a restart can take 6 ms, less than the
	// probes' spacing on a loaded machine (a run saw none). What clients do
	// while nothing listens is the point here; the start-up time is
	// measured from the new process's launch.
	time.Sleep(300 * time.Millisecond)
	launched := time.Now()
	p2, ready := startResolver(t, b.node.NS, b.config)
	testbed.Eventually(t, 5*time.Second, func() bool {
		return dig(t, c1, server.Addr(), "c2").is("NOERROR", "10.100.0.6")
	}, "no answer after the restart")
	// The probes end once they are answered again. Under load (the race
	// detector, a busy machine) one may still time out after dig's answer:
	// a late reply to an earlier query is not its answer.
	answered := time.Now()
	testbed.Eventually(t, 10*time.Second, func() bool { return probes.answeredSince(answered, 5) }, "probes unanswered after the restart")
	close(stop)
	res := probes.results()
	counts := map[string]int{}
	var firstFail, lastFail time.Time
	for _, r := range res {
		counts[r.outcome]++
		if r.outcome != "ok" {
			if firstFail.IsZero() {
				firstFail = r.at
			}
			lastFail = r.at
		}
	}
	if len(res) == 0 || res[0].outcome != "ok" || res[len(res)-1].outcome != "ok" {
		seq := make([]string, len(res))
		for i, r := range res {
			seq[i] = r.outcome[:1]
		}
		t.Fatalf("probes do not start and end answered: %v: %s", counts, strings.Join(seq, ""))
	}
	if counts["refused"]+counts["timeout"] == 0 {
		t.Errorf("no probe saw the restart: %v", counts)
	}

	// Nothing listening: the C library, with timeout:1 attempts:3.
	p2.stop(t)
	start := time.Now()
	out, err := c1.Exec("getent", "hosts", "c2")
	glibc := time.Since(start)
	if err == nil {
		t.Fatalf("getent resolved with no resolver running: %s", out)
	}
	t.Logf("restart: SIGTERM to sockets closed %v; launch to new process serving %v (process start, config, bind; the test waits 300 ms between); "+
		"probes every 5 ms: %v, failing for %v; with no resolver, glibc's getent (timeout:1 attempts:3) failed after %v",
		closed.Sub(term).Round(time.Millisecond), ready.Sub(launched).Round(time.Millisecond), counts,
		lastFail.Sub(firstFail).Round(time.Millisecond), glibc.Round(time.Millisecond))
}

// TestRestartHandoff restarts the resolver the way it should be under a
// service manager that keeps its sockets (systemd socket activation or its
// file descriptor store, see Server.Files and Inherit): the test holds the
// sockets, as systemd would, and both processes serve them in turn. No
// query is refused; those sent during the restart wait in the socket and
// are answered by the new process.
func TestRestartHandoff(t *testing.T) {
	b := newDNSBed(t)
	var files []*os.File
	inNetNS(t, b.node.NS, func() {
		for _, nw := range b.cfg.Networks {
			u, l, err := ListenFreebind(netip.AddrPortFrom(nw.Gateway, DefaultPort))
			if err != nil {
				t.Error(err)
				return
			}
			for _, c := range []interface{ File() (*os.File, error) }{u, l} {
				f, err := c.File()
				if err != nil {
					t.Error(err)
				}
				files = append(files, f)
			}
			u.Close() // the files keep the sockets open
			l.Close()
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	defer closeFiles(files)
	p, _ := startResolver(t, b.node.NS, b.config, files...)
	c1 := b.containers["c1"].NS
	server := netip.AddrPortFrom(gatewayOf("blue"), DefaultPort)
	if r := dig(t, c1, server.Addr(), "c2"); !r.is("NOERROR", "10.100.0.6") {
		t.Fatalf("before the restart: %s", r.out)
	}
	stop := make(chan struct{})
	probes := probe(t, c1, server, "c2.", 5*time.Millisecond, 2*time.Second, stop)
	began := time.Now()
	testbed.Eventually(t, 5*time.Second, func() bool { return probes.answeredSince(began, 5) }, "probes unanswered before the restart")

	closed := p.stop(t)
	_, ready := startResolver(t, b.node.NS, b.config, files...)
	testbed.Eventually(t, 10*time.Second, func() bool { return probes.answeredSince(ready, 5) }, "probes unanswered after the restart")
	close(stop)
	res := probes.results()
	counts := map[string]int{}
	var slowest time.Duration
	waited := 0 // probes sent while no process served the sockets
	for _, r := range res {
		counts[r.outcome]++
		slowest = max(slowest, r.took)
		if r.outcome == "ok" && !r.at.Before(closed) && r.at.Before(ready) {
			waited++
			// Nothing read the sockets until ready: its answer came after.
			if r.at.Add(r.took).Before(ready) {
				t.Errorf("a probe sent %v after the old process closed was answered before the new one served", r.at.Sub(closed))
			}
		}
	}
	t.Logf("handoff restart: sockets held; old process closed its copy, new process serving %v later; probes every 5 ms: %v "+
		"(%d sent while no process served, answered by the new one), slowest answer %v",
		ready.Sub(closed).Round(time.Millisecond), counts, waited, slowest.Round(time.Millisecond))
	if counts["refused"]+counts["timeout"] != 0 {
		t.Errorf("probes during a handoff restart: %v, want every one answered", counts)
	}
	if r := dig(t, c1, server.Addr(), "+tcp", "c2"); !r.is("NOERROR", "10.100.0.6") {
		t.Errorf("TCP after the handoff: %s", r.out)
	}
}
