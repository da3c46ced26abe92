package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// Independent observers: tcpdump captures and ovs-ofctl flow counters.

// plCapture is a tcpdump writing to a pcap file inside a namespace.
type plCapture struct {
	cmd     *exec.Cmd
	file    string
	done    chan struct{}
	once    sync.Once
	stopped bool
}

// plStartCapture runs tcpdump on iface in ns and returns once it listens.
// Extra args (e.g. "-Q", "in") go before the file option.
func plStartCapture(t *testing.T, ns testbed.NetNS, iface string, args ...string) *plCapture {
	t.Helper()
	file := filepath.Join(t.TempDir(), iface+".pcap")
	argv := append([]string{"netns", "exec", string(ns), "tcpdump", "-Z", "root", "--immediate-mode", "-i", iface, "-n", "-U"}, args...)
	// "ip netns exec" execs tcpdump in place, so the pid is tcpdump's.
	// Immediate mode matters: with libpcap's default buffering, packets of
	// the last second are still in the kernel ring when tcpdump stops.
	c := &plCapture{cmd: exec.Command("ip", append(argv, "-w", file)...), file: file, done: make(chan struct{})}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("tcpdump on %s: %v", iface, err)
	}
	t.Cleanup(c.stop)
	ready := make(chan struct{})
	var log bytes.Buffer
	var mu sync.Mutex
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				signalled = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-c.done:
		t.Fatalf("tcpdump on %s exited: %s", iface, log.String())
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("tcpdump on %s not listening after 10s: %s", iface, log.String())
	}
	return c
}

// stop ends tcpdump by its pid and waits for it (idempotent).
func (c *plCapture) stop() {
	c.once.Do(func() {
		c.stopped = true
		time.Sleep(200 * time.Millisecond) // packets still in flight
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		_ = c.cmd.Wait()
	})
}

// plStopAll stops captures concurrently (each waits for packets in flight).
func plStopAll(caps ...*plCapture) {
	var wg sync.WaitGroup
	for _, c := range caps {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// read returns tcpdump's decoding of the captured packets that match
// filter, one packet per line (extra flags such as -e go in flags). The
// capture must have been stopped: reading a running one would silently
// miss what comes later.
func (c *plCapture) read(t *testing.T, filter string, flags ...string) []string {
	t.Helper()
	if !c.stopped {
		t.Fatal("plCapture.read before stop")
	}
	args := append([]string{"-r", c.file, "-nn"}, flags...)
	if filter != "" {
		args = append(args, filter)
	}
	out, err := exec.Command("tcpdump", args...).Output()
	if err != nil {
		t.Fatalf("tcpdump %s: %v", strings.Join(args, " "), err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

var plFlowRE = regexp.MustCompile(`n_packets=(\d+),.* priority=(\d+),?(\S*) actions=`)

// plFlowPackets reads the packet counter of the flow with exactly this
// priority and match among `dump-flows br-int <filter>`.
func plFlowPackets(t *testing.T, n *testbed.Node, filter string, prio int, match string) uint64 {
	t.Helper()
	dump := n.Ofctl(t, "dump-flows", "br-int", filter)
	for _, l := range strings.Split(dump, "\n") {
		m := plFlowRE.FindStringSubmatch(l)
		if m != nil && m[2] == strconv.Itoa(prio) && m[3] == match {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			return v
		}
	}
	t.Fatalf("%s: no flow priority=%d,%s in dump-flows %s:\n%s", n.Name, prio, match, filter, dump)
	return 0
}

// plSumPackets adds the packet counters of every flow `dump-flows br-int
// <filter>` selects, and reports how many flows had a nonzero counter.
func plSumPackets(t *testing.T, n *testbed.Node, filter string) (sum uint64, hit, flows int) {
	t.Helper()
	for _, l := range strings.Split(n.Ofctl(t, "dump-flows", "br-int", filter), "\n") {
		if m := plFlowRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			sum, flows = sum+v, flows+1
			if v > 0 {
				hit++
			}
		}
	}
	return sum, hit, flows
}

// plWaitPackets waits until a flow counter reaches at least want (the
// userspace datapath pushes statistics to OpenFlow rules periodically) and
// returns the last value read.
func plWaitPackets(t *testing.T, n *testbed.Node, filter string, prio int, match string, want uint64) uint64 {
	t.Helper()
	var got uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got = plFlowPackets(t, n, filter, prio, match); got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// plFlowsNoStats is `dump-flows --no-stats br-int` as sorted lines without
// the leading space, the form flow.Flow.String prints.
func plFlowsNoStats(t *testing.T, n *testbed.Node) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(n.Ofctl(t, "dump-flows", "--no-stats", "br-int"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// plDiagnose is the flow dump of a node and the ofproto/trace of a packet
// through its br-int, for failure messages.
func plDiagnose(t *testing.T, n *testbed.Node, packet string) string {
	t.Helper()
	dump, _ := n.OfctlErr("dump-flows", "br-int")
	trace, err := exec.Command("ovs-appctl", "-t", n.VswitchdCtl(), "ofproto/trace", "br-int", packet).CombinedOutput()
	if err != nil {
		trace = fmt.Appendf(trace, "(ofproto/trace: %v)", err)
	}
	return fmt.Sprintf("--- %s dump-flows br-int:\n%s--- %s ofproto/trace br-int %s:\n%s", n.Name, dump, n.Name, packet, trace)
}
