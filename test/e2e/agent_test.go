package e2e

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// agCluster is the static cluster view the agent e2e tests share.
const agCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
  - name: hb
    tunnel_ip: 192.0.2.2
    ranges: { blue: 10.100.2.0/24 }
`

// agStart starts an agent for node under name self and waits until ready.
func agStart(t *testing.T, node *testbed.Node, self, tunnelIP, clusterFile string) *testbed.Agent {
	t.Helper()
	args := append(testbed.AgentArgs(node, self, tunnelIP), "--cluster-file", clusterFile, "--verify-interval", "300ms")
	p := testbed.StartAgent(t, filepath.Join(node.Dir, "agent-"+self+".log"), args...)
	p.WaitReady(t, 15*time.Second)
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// agTopology: two nodes with agents, one blue container on each.
type agTopology struct {
	a, b   *testbed.Node
	pa, pb *testbed.Agent
	ca, cb *testbed.Container
}

func agSetup(t *testing.T) *agTopology {
	t.Helper()
	testbed.Require(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	tp := &agTopology{a: testbed.NewNode(t, "ha"), b: testbed.NewNode(t, "hb")}
	testbed.Underlay(t, tp.a, tp.b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	tp.pa = agStart(t, tp.a, "ha", "192.0.2.1", file)
	tp.pb = agStart(t, tp.b, "hb", "192.0.2.2", file)
	tp.ca = agContainer(t, tp.a, "ca", "10.100.1.10/16")
	tp.cb = agContainer(t, tp.b, "cb", "10.100.2.10/16")
	testbed.Eventually(t, 10*time.Second, func() bool { ok, _ := tp.ca.Ping(tp.cb.Addr.Addr(), 1); return ok },
		"cross-host ping never worked")
	return tp
}

func agContainer(t *testing.T, n *testbed.Node, name, ip string) *testbed.Container {
	addr := netip.MustParsePrefix(ip)
	c := n.AddContainer(t, name, testbed.ContainerOpts{Addr: addr, MAC: arp.DerivedMAC(addr.Addr())})
	c.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: addr.Addr().String()})
	return c
}

// pingDuring runs a continuous ping from c to dst while during() runs, then
// returns transmitted and received counts.
func pingDuring(t *testing.T, c *testbed.Container, dst netip.Addr, interval string, during func()) (sent, recv int) {
	t.Helper()
	r := pingRun(t, c, dst, interval, during)
	return r.sent, r.recv
}

// pingResult is what a continuous ping saw.
type pingResult struct {
	sent, recv int
	// gap is the longest time between two consecutive replies: how long
	// the path was broken (to the ping interval's precision).
	gap time.Duration
}

// pingRun runs a continuous ping (-D: replies timestamped) from c to dst
// while during() runs, and summarises it.
func pingRun(t *testing.T, c *testbed.Container, dst netip.Addr, interval string, during func()) pingResult {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", string(c.NS), "ping", "-n", "-D", "-i", interval, "-W", "1", dst.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	done := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines = append(lines, s.Text())
		}
		_, _ = io.Copy(io.Discard, out)
		close(done)
	}()
	time.Sleep(500 * time.Millisecond)
	during()
	time.Sleep(500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT) // ping prints its summary
	<-done
	_ = cmd.Wait()
	return parsePing(t, lines)
}

// parsePing reads ping -D output: replies "[unix time] ... icmp_seq=N ..."
// and the "N packets transmitted, M received" summary.
func parsePing(t *testing.T, lines []string) pingResult {
	t.Helper()
	re := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	replyRe := regexp.MustCompile(`^\[(\d+\.\d+)\].* icmp_seq=(\d+) `)
	got := map[int]bool{}
	var res pingResult
	var last float64
	for _, l := range lines {
		if m := replyRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			got[n] = true
			at, _ := strconv.ParseFloat(m[1], 64)
			if last > 0 {
				res.gap = max(res.gap, time.Duration((at-last)*float64(time.Second)))
			}
			last = at
		}
	}
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			res.sent, _ = strconv.Atoi(m[1])
			res.recv, _ = strconv.Atoi(m[2])
			// The last echo may still be in flight when ping is
			// interrupted: it was not lost, just not waited for.
			if res.recv == res.sent-1 && !got[res.sent] {
				res.sent--
			}
			return res
		}
	}
	t.Fatalf("no ping summary in:\n%s", strings.Join(lines, "\n"))
	return res
}
