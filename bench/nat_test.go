package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// BenchmarkNAT measures the gateways' north-south path and the cost of the
// packet filter on the east-west one, with the real agent (binary) on one
// node:
//
//   - outside: TCP throughput (iperf3, one stream, each direction) from a
//     container attached with `ofctl-agent attach` to a server in the
//     outside namespace, through the gateway port and the agent's
//     masquerade, next to the same transfer from a container on a Linux
//     bridge with a masquerade rule in the same node (the docker0 model:
//     bridge 10.99.0.1/24, `ip saddr 10.99.0.0/24 oifname != "lbr0"
//     masquerade`), alternated ABBA; reports the medians and their ratio.
//
//     A second reference is the same bridge with the container's TX
//     offload off, as attach sets it on the userspace datapath.
//
//   - c2c: TCP throughput between two containers of the node with the
//     agent's table in the kernel (after) and without it (before), the
//     agent stopped (SIGSTOP) in both modes so that only the table
//     differs (deleted, then put back from its `nft -s list`), alternated
//     ABBA; target after/before >= 0.95. Container traffic is switched by
//     OVS; the host ends of the veths hand it to the node's IP stack too,
//     which drops it before any hook (not addressed to the host's MACs).
//
//     flock /tmp/team/bench.lock go test -run '^$' -bench NAT -benchtime 1x ./bench/
func BenchmarkNAT(b *testing.B) {
	dpRequireTools(b)
	testbed.RequireTools(b, "nft", "ip")
	nb := natNewBed(b)
	b.Run("outside", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, reverse := range []bool{false, true} {
				dir := "container->outside"
				if reverse {
					dir = "outside->container"
				}
				gw, br := nb.alternate(b, natRounds, func(mode int) float64 {
					from := []string{nb.ctr1, nb.bridged}[mode]
					return nb.iperf(b, from, testbed.OutsideAddr.String(), reverse)
				})
				natReport(b, dir, "gateway+NAT", "linux bridge+masquerade", gw, br)
				// The same bridge with the container's TX offload off, as
				// attach sets it on the userspace datapath: what the
				// offloads are worth, apart from the datapath.
				gw2, brOff := nb.alternate(b, natRounds, func(mode int) float64 {
					from := []string{nb.ctr1, nb.bridgedOff}[mode]
					return nb.iperf(b, from, testbed.OutsideAddr.String(), reverse)
				})
				natReport(b, dir+" (bridge without tx offload)", "gateway+NAT", "linux bridge+masquerade, tx off", gw2, brOff)
			}
		}
	})
	b.Run("c2c", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			after, before := nb.alternate(b, natC2CRounds, func(mode int) float64 {
				nb.setTable(b, mode == 0)
				return nb.iperf(b, nb.ctr1, nb.ctr2IP, false)
			})
			natReport(b, "container->container", "with the table", "without", after, before)
			nb.setTable(b, true)
			natSignal(b, nb.agent, syscall.SIGCONT)
			nb.saved = ""
		}
	})
}

const (
	natRounds    = 4 // ABBA alternations, north-south
	natC2CRounds = 8 // and container-to-container (a small difference to see on a loaded machine)
	natSeconds   = 5 // measured seconds per iperf3 run (plus 1 omitted)
	natPort      = "5202"
)

const natCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
`

type natBed struct {
	node    *testbed.Node
	agent   *testbed.Agent
	out     *testbed.Outside
	ctr1    string // namespaces: two containers attached to br-int, one on the Linux bridge
	ctr2    string
	ctr2IP  string
	bridged string
	// bridgedOff: a second container on the Linux bridge, TX checksum
	// offload (and so TSO) off as attach sets it for the userspace datapath.
	bridgedOff string
	saved      string // the agent's table as nft lists it (c2c)
}

func natNewBed(b *testing.B) *natBed {
	b.Helper()
	file := filepath.Join(b.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(natCluster), 0o644); err != nil {
		b.Fatal(err)
	}
	nb := &natBed{node: testbed.NewNode(b, "nat")}
	nb.out = testbed.AddOutside(b, nb.node)
	args := append(testbed.AgentArgs(nb.node, "ha", "192.0.2.1"), "--cluster-file", file, "--log-level", "info")
	nb.agent = testbed.StartAgent(b, filepath.Join(nb.node.Dir, "agent.log"), args...)
	nb.agent.WaitReady(b, 20*time.Second)
	nb.ctr1, nb.ctr2 = nb.attach(b, "natc1", "10.100.1.11"), nb.attach(b, "natc2", "10.100.1.12")
	nb.ctr2IP = "10.100.1.12"
	nb.bridged, nb.bridgedOff = nb.linuxBridge(b)
	for _, ns := range []string{string(nb.out.NS), nb.ctr2} {
		natServer(b, ns)
	}
	for _, from := range []string{nb.ctr1, nb.bridged, nb.bridgedOff} { // every path works before anything is measured
		testbed.Eventually(b, 10*time.Second, func() bool {
			return exec.Command("ip", "netns", "exec", from, "ping", "-n", "-q", "-c", "1", "-W", "1", testbed.OutsideAddr.String()).Run() == nil
		}, "%s cannot reach the outside", from)
	}
	return nb
}

// attach makes a namespace and attaches it with the CLI (the agent's
// address, gateway route and MTU).
func (nb *natBed) attach(b *testing.B, name, ip string) string {
	b.Helper()
	ns := testbed.NewNetNS(b, name)
	out, err := exec.Command(testbed.AgentBinary(b), "attach", "--network", "blue", "--ip", ip, "--ovsdb", nb.node.DBAddr(),
		"--netns-host", nb.node.NS.Path(), "--agent-socket", testbed.AgentSocket(nb.node), ns.Path()).CombinedOutput()
	if err != nil {
		b.Fatalf("attach %s: %v\n%s", name, err, out)
	}
	return string(ns)
}

// linuxBridge builds the docker0 model in the node and returns two
// container namespaces on it: one as Docker makes them, one with TX
// checksum offload off.
func (nb *natBed) linuxBridge(b *testing.B) (string, string) {
	b.Helper()
	n := nb.node
	n.Exec(b, "ip", "link", "add", "lbr0", "type", "bridge")
	n.Exec(b, "ip", "addr", "add", "10.99.0.1/24", "dev", "lbr0")
	n.Exec(b, "ip", "link", "set", "lbr0", "up")
	var out []string
	for i, name := range []string{"natlb", "natlboff"} {
		ns := testbed.NewNetNS(b, name)
		veth := fmt.Sprintf("lbv%d", i)
		n.Exec(b, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", string(ns))
		n.Exec(b, "ip", "link", "set", veth, "master", "lbr0", "up")
		ns.MustExec(b, "ip", "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+2), "dev", "eth0")
		ns.MustExec(b, "ip", "link", "set", "eth0", "up")
		ns.MustExec(b, "ip", "route", "add", "default", "via", "10.99.0.1")
		if i == 1 {
			ns.MustExec(b, "ethtool", "-K", "eth0", "tx", "off")
		}
		out = append(out, string(ns))
	}
	n.Exec(b, "sysctl", "-q", "-w", "net.ipv4.conf.lbr0.forwarding=1", "net.ipv4.conf.up0.forwarding=1")
	n.Exec(b, "nft", "add table ip docker0-model; add chain ip docker0-model post { type nat hook postrouting priority srcnat; }; "+
		`add rule ip docker0-model post ip saddr 10.99.0.0/24 oifname != "lbr0" masquerade`)
	return out[0], out[1]
}

// setTable puts the agent's table in the kernel (on) or takes it out
// (off), with the agent stopped (SIGSTOP) in both modes so that only the
// table differs: the table is saved once (nft -s list) and put back with
// nft -f.
func (nb *natBed) setTable(b *testing.B, on bool) {
	b.Helper()
	if nb.saved == "" {
		natSignal(b, nb.agent, syscall.SIGSTOP)
		time.Sleep(100 * time.Millisecond) // a transaction of the agent's in flight ends
		nb.saved = filepath.Join(b.TempDir(), "table.nft")
		out := nb.node.Exec(b, "nft", "-s", "list", "table", "ip", netfilter.DefaultTable)
		if err := os.WriteFile(nb.saved, []byte(out), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	_, err := nb.node.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable)
	switch {
	case on && err != nil:
		nb.node.Exec(b, "nft", "-f", nb.saved)
	case !on && err == nil:
		nb.node.Exec(b, "nft", "delete", "table", "ip", netfilter.DefaultTable)
	}
}

func natSignal(b *testing.B, a *testbed.Agent, sig syscall.Signal) {
	b.Helper()
	if err := syscall.Kill(a.Pid(), sig); err != nil {
		b.Fatalf("signal %v to the agent: %v", sig, err)
	}
	b.Cleanup(func() { _ = syscall.Kill(a.Pid(), syscall.SIGCONT) })
}

// alternate runs measure for modes 0 and 1, rounds times in ABBA order,
// and returns each mode's results.
func (nb *natBed) alternate(b *testing.B, rounds int, measure func(mode int) float64) (m0, m1 []float64) {
	b.Helper()
	for r := range rounds {
		for k := range 2 {
			mode := (k + r) % 2
			v := measure(mode)
			if mode == 0 {
				m0 = append(m0, v)
			} else {
				m1 = append(m1, v)
			}
		}
	}
	return m0, m1
}

// natServer runs `iperf3 -s` in namespace ns until the benchmark ends.
func natServer(b *testing.B, ns string) {
	b.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "iperf3", "-s", "-p", natPort)
	if err := cmd.Start(); err != nil {
		b.Fatalf("iperf3 server: %v", err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testbed.Eventually(b, 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :"+natPort).Output()
		return strings.TrimSpace(string(out)) != ""
	}, "iperf3 server not listening in %s", ns)
}

// iperf runs one stream from namespace from to dst (reverse: dst sends)
// and returns the received Gbit/s.
func (nb *natBed) iperf(b *testing.B, from, dst string, reverse bool) float64 {
	b.Helper()
	args := []string{"netns", "exec", from, "iperf3", "-c", dst, "-p", natPort, "-t", strconv.Itoa(natSeconds), "-O", "1", "-J"}
	if reverse {
		args = append(args, "-R")
	}
	for try := 0; ; try++ {
		out, err := exec.Command("ip", args...).Output()
		var r iperfResult
		jerr := json.Unmarshal(out, &r)
		if strings.Contains(r.Error, "busy") && try < 10 { // the server is still closing the last run
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if jerr != nil || err != nil || r.Error != "" || r.End.SumReceived.BitsPerSecond <= 0 {
			b.Fatalf("iperf3 from %s to %s: %v %v %s\n%s", from, dst, err, jerr, r.Error, out)
		}
		return r.End.SumReceived.BitsPerSecond / 1e9
	}
}

// natReport logs both modes' runs and reports the medians and their ratio.
func natReport(b *testing.B, what, name0, name1 string, m0, m1 []float64) {
	b.Helper()
	med0, med1 := median(m0), median(m1)
	b.Logf("%s: %s %s Gbit/s; %s %s Gbit/s", what, name0, natList(m0), name1, natList(m1))
	unit := strings.NewReplacer(">", "-", " ", "-", "+", "-").Replace(what)
	b.ReportMetric(med0, unit+"-Gbit/s")
	b.ReportMetric(med1, unit+"-ref-Gbit/s")
	b.ReportMetric(med0/med1, unit+"-ratio")
}

func natList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}
