package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The etcd benchmark: etcdHosts x etcdPerHost endpoint records written
// straight into an etcd embedded in the test process, then one real agent
// binary (`ofctl-agent run --cluster-backend etcd`) on a test-bed node
// converges: every remote endpoint's two flows and every host's tunnel
// flow in OVS, counted with ovs-ofctl dump-aggregate. Then single records
// change and the agent's flow_mods counter says what each cost.
const (
	etcdHosts    = 1000
	etcdPerHost  = 100
	etcdPrefix   = "/bench"
	etcdWriters  = 8   // concurrent transactions while seeding
	etcdTxnOps   = 100 // puts per transaction (etcd's default limit is 128)
	etcdChanges  = 20  // single-record changes timed
	etcdNodeName = "self"
)

var etcdNet = cluster.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.0.0.0/8")}

// etcdEndpoint is endpoint j of host h: IP and MAC unique, MAC not derived.
func etcdEndpoint(h, j, gen int) (netip.Addr, net.HardwareAddr) {
	n := h*etcdPerHost + j + 1
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}),
		net.HardwareAddr{0x02, byte(gen), 0, byte(n >> 16), byte(n >> 8), byte(n)}
}

func etcdHostName(h int) string { return fmt.Sprintf("h%04d", h) }

func etcdHostIP(h int) netip.Addr { return netip.AddrFrom4([4]byte{172, 16, byte(h >> 8), byte(h)}) }

// etcdSeed writes the network, the hosts and their endpoints.
func etcdSeed(b *testing.B, c *clientv3.Client) time.Duration {
	b.Helper()
	start := time.Now()
	var ops []clientv3.Op
	ops = append(ops, clientv3.OpPut(etcd.NetworkKey(etcdPrefix, etcdNet.Name), string(etcd.EncodeNetwork(etcdNet))))
	for h := range etcdHosts {
		ops = append(ops, clientv3.OpPut(etcd.HostKey(etcdPrefix, etcdHostName(h)), string(etcd.EncodeHost(etcdHostIP(h)))))
	}
	for h := range etcdHosts {
		for j := range etcdPerHost {
			ip, mac := etcdEndpoint(h, j, 0)
			ops = append(ops, clientv3.OpPut(etcd.EndpointKey(etcdPrefix, etcdNet.Name, ip, etcdHostName(h)), string(etcd.EncodeEndpoint(mac))))
		}
	}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(etcdWriters)
	for i := 0; i < len(ops); i += etcdTxnOps {
		batch := ops[i:min(i+etcdTxnOps, len(ops))]
		g.Go(func() error {
			_, err := c.Txn(ctx).Then(batch...).Commit()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// etcdWantFlows is the agent's flow count per pkg/pipeline: fixed flows,
// the network's, one tunnel flow per remote host, two per remote endpoint.
func etcdWantFlows() int {
	h := pipeline.RemoteHost{Name: "x", TunnelIP: etcdHostIP(1)}
	pn := pipeline.Network{Name: etcdNet.Name, VNI: etcdNet.VNI, Subnet: etcdNet.Subnet}
	ip, mac := etcdEndpoint(0, 0, 0)
	e := pipeline.RemoteEndpoint{Network: pn.Name, IP: ip, MAC: mac, Host: "x"}
	return len(pipeline.FixedFlows(agentTunnelOF)) + len(pipeline.NetworkFlows(pn)) +
		etcdHosts*len(pipeline.RemoteHostFlows(h, []pipeline.Network{pn})) +
		etcdHosts*etcdPerHost*len(pipeline.RemoteEndpointFlows(pn, h, e))
}

// BenchmarkEtcdConverge reports: seeding time, the agent's time from
// process start to every flow in OVS, its RSS and live heap (after a
// forced GC, read from its own /metrics: the whole agent process, the
// etcd client and the view included, etcd itself not) with where the RSS
// goes (memSplit), the RSS and live heap again after the changes without a
// forced GC (steady) and the peak RSS, and the flow_mods and latency of
// single remote-endpoint changes: polled with ovs-ofctl dump-flows (p50,
// of which one dump is dump-p50-ms) and as OVS's flow monitor reports the
// flow (ovs-p50).
func BenchmarkEtcdConverge(b *testing.B) {
	testbed.Require(b)
	srv := etcdtest.Start(b)
	c := srv.Client(b)
	seed := etcdSeed(b, c)
	node := testbed.NewNode(b, "etc")
	want := etcdWantFlows()
	for i := 0; i < b.N; i++ {
		a := etcdStartAgent(b, node, srv.Endpoint())
		cpu := a.cpuProfile(b, os.Getenv("OFCTL_BENCH_PROFILE_DIR"))
		converge := etcdWaitFlows(b, node, want, 5*time.Minute)
		<-cpu
		time.Sleep(2 * time.Second) // let the first drift check finish before reading memory
		rss, heap := a.memory(b)
		split := a.memorySplit(b)
		a.saveProfile(b, os.Getenv("OFCTL_BENCH_PROFILE_DIR"))
		mac, move := etcdChangeOne(b, c, node, a)
		gone := etcdHostsGone(b, c, node, a, want)
		time.Sleep(12 * time.Second) // the agent releases memory 2 s after changes stop, at most every 10 s
		steady := a.memorySplit(b)   // no forced GC: what an operator sees between changes
		if dir := os.Getenv("OFCTL_BENCH_PROFILE_DIR"); dir != "" {
			time.Sleep(10 * time.Second)
			vs, _ := os.ReadFile(filepath.Join(node.Dir, "vswitchd.log"))
			_ = os.WriteFile(filepath.Join(dir, "vswitchd.log"), vs, 0o644)
			lg, _ := os.ReadFile(a.LogPath)
			_ = os.WriteFile(filepath.Join(dir, "etcd-agent.log"), lg, 0o644)
		}
		b.ReportMetric(seed.Seconds(), "seed-s")
		b.ReportMetric(converge.Seconds(), "converge-s")
		b.ReportMetric(a.etcdListTook(b).Seconds(), "list-s")
		b.ReportMetric(rss, "rss-MiB")
		b.ReportMetric(heap, "heap-MiB")
		split.report(b, "")
		b.ReportMetric(steady.rss, "rss-steady-MiB")
		b.ReportMetric(steady.live, "heap-steady-MiB")
		b.ReportMetric(steady.free, "heap-free-steady-MiB")
		b.ReportMetric(steady.peak, "peak-rss-MiB")
		b.ReportMetric(mac.mods, "flowmods/mac-change")
		b.ReportMetric(ms(mac.p50), "mac-change-p50-ms")
		b.ReportMetric(move.mods, "flowmods/move")
		b.ReportMetric(ms(move.p50), "move-p50-ms")
		b.ReportMetric(ms(mac.ovsP50), "mac-change-ovs-p50-ms")
		b.ReportMetric(ms(move.ovsP50), "move-ovs-p50-ms")
		b.ReportMetric(ms(min(mac.dumpP50, move.dumpP50)), "dump-p50-ms")
		b.ReportMetric(gone.mods, "flowmods/host-gone")
		b.ReportMetric(ms(gone.p50), "host-gone-p50-ms")
		b.ReportMetric(float64(want), "flows")
		a.Stop(syscall.SIGTERM)
		list, bundle := etcdFloor(b, c, node, want)
		b.ReportMetric(list.Seconds(), "floor-list-s")
		b.ReportMetric(bundle.Seconds(), "floor-bundle-s")
		b.ReportMetric((list + bundle).Seconds(), "floor-s")
		b.ReportMetric(converge.Seconds()/(list+bundle).Seconds(), "converge/floor")
	}
	b.ReportMetric(0, "ns/op")
}

func etcdStartAgent(b *testing.B, node *testbed.Node, endpoint string) *daemon {
	b.Helper()
	args := append(daemonArgs(node, etcdNodeName), "--cluster-backend", "etcd", "--etcd-endpoints", endpoint,
		"--etcd-prefix", etcdPrefix, "--cluster-file", filepath.Join(node.Dir, "none.yaml"),
		"--all-remote-flows") // no local endpoint here: scoped, it would program no remote endpoint
	args = append(args, strings.Fields(os.Getenv("OFCTL_BENCH_ETCD_ARGS"))...) // e.g. --memory-limit off
	return startDaemon(b, filepath.Join(node.Dir, "agent-etcd.log"), args...)
}

// etcdFloor measures, on the same etcd and bridge, what converging needs
// without the agent: one range read of the prefix (all keys, one request,
// values decoded by the client) and one bundle of the agent's flows at
// convergence (pkg/pipeline's of the seeded records, encoded beforehand) on a bare pkg/openflow connection
// to the emptied bridge, until the commit reply. The flows are counted
// with ovs-ofctl afterwards.
func etcdFloor(b *testing.B, c *clientv3.Client, node *testbed.Node, want int) (list, bundle time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := c.Get(ctx, etcdPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	list = time.Since(start)
	if len(resp.Kvs) < etcdHosts*etcdPerHost*99/100 { // the changes above removed 3 hosts' records
		b.Fatalf("range read: %d keys", len(resp.Kvs))
	}
	pn := pipeline.Network{Name: etcdNet.Name, VNI: etcdNet.VNI, Subnet: etcdNet.Subnet}
	flows := append(pipeline.FixedFlows(agentTunnelOF), pipeline.NetworkFlows(pn)...)
	for h := range etcdHosts {
		rh := pipeline.RemoteHost{Name: etcdHostName(h), TunnelIP: etcdHostIP(h)}
		flows = append(flows, pipeline.RemoteHostFlows(rh, []pipeline.Network{pn})...)
		for j := range etcdPerHost {
			ip, mac := etcdEndpoint(h, j, 0)
			flows = append(flows, pipeline.RemoteEndpointFlows(pn, rh, pipeline.RemoteEndpoint{Network: pn.Name, IP: ip, MAC: mac, Host: rh.Name})...)
		}
	}
	if len(flows) != want {
		b.Fatalf("floor: %d flows, want %d", len(flows), want)
	}
	msgs := addMods(b, flows)
	node.Ofctl(b, "del-flows", agentBridge)
	conn, err := openflow.Dial(ctx, openflow.Config{Addr: node.MgmtAddr(agentBridge), RequestTimeout: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Barrier(ctx); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if err := installBundle(ctx, conn, msgs); err != nil {
		b.Fatal(err)
	}
	bundle = time.Since(start)
	if got := countFlows(b, node, agentBridge); got != want {
		b.Fatalf("floor bundle: OVS holds %d flows, want %d", got, want)
	}
	return list, bundle
}

// etcdWaitFlows polls dump-aggregate until br-int holds want flows.
func etcdWaitFlows(b *testing.B, node *testbed.Node, want int, timeout time.Duration) time.Duration {
	b.Helper()
	start := time.Now()
	got := -1
	for time.Since(start) < timeout {
		if n, err := node.FlowCount(agentBridge); err == nil {
			if got = n; got == want {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("after %v br-int holds %d flows, want %d", timeout, got, want)
	return 0
}

type changeResult struct {
	mods float64 // flow_mods per change (mean)
	p50  time.Duration
	// ovsP50: the etcd write to OVS's flow monitor reporting the flow
	// (l2Events); dumpP50: one ovs-ofctl dump-flows of the flow, the
	// polled p50's floor (single changes only).
	ovsP50, dumpP50 time.Duration
}

// etcdChangeOne changes single records and waits for OVS to show each:
// first a MAC change (same host), then a move to another host. The flow
// checked is the endpoint's l2_forward flow (dl_dst=MAC, reg2=host), by
// polling ovs-ofctl dump-flows (p50) and by OVS's flow monitor (ovsP50).
func etcdChangeOne(b *testing.B, c *clientv3.Client, node *testbed.Node, a *daemon) (mac, move changeResult) {
	b.Helper()
	events := watchL2(b, node)
	defer events.stop()
	run := func(change func(i int) (m net.HardwareAddr, host int)) changeResult {
		var lat, ovs, dumps []time.Duration
		before := a.Metric(b, "ofctl_agent_flow_mods_total")
		for i := range etcdChanges {
			start := time.Now()
			m, host := change(i)
			dump := etcdWaitFlow(b, node, m, host)
			lat = append(lat, time.Since(start))
			ovs = append(ovs, events.added(b, m, etcdHostHex(host), start).Sub(start))
			dumps = append(dumps, dump)
		}
		time.Sleep(time.Second) // a late flush would count too
		mods := (a.Metric(b, "ofctl_agent_flow_mods_total") - before) / etcdChanges
		return changeResult{mods: mods, p50: quantile(lat, 0.5), ovsP50: quantile(ovs, 0.5), dumpP50: quantile(dumps, 0.5)}
	}
	mac = run(func(i int) (net.HardwareAddr, int) {
		h, j := i*37%etcdHosts, i%etcdPerHost
		ip, m := etcdEndpoint(h, j, 1)
		etcdPutCtx(b, c, etcd.EndpointKey(etcdPrefix, etcdNet.Name, ip, etcdHostName(h)), string(etcd.EncodeEndpoint(m)))
		return m, h
	})
	move = run(func(i int) (net.HardwareAddr, int) {
		h, j := i*53%etcdHosts, (i+50)%etcdPerHost
		ip, m := etcdEndpoint(h, j, 0)
		to := (h + 1) % etcdHosts
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Txn(ctx).Then(clientv3.OpDelete(etcd.EndpointKey(etcdPrefix, etcdNet.Name, ip, etcdHostName(h))),
			clientv3.OpPut(etcd.EndpointKey(etcdPrefix, etcdNet.Name, ip, etcdHostName(to)), string(etcd.EncodeEndpoint(m)))).Commit()
		if err != nil {
			b.Fatal(err)
		}
		return m, to
	})
	return mac, move
}

// etcdHostsGone deletes hosts with all their endpoints in one transaction
// each, as a lease expiry does, and times until their flows left OVS.
func etcdHostsGone(b *testing.B, c *clientv3.Client, node *testbed.Node, a *daemon, flows int) changeResult {
	b.Helper()
	const hosts = 3
	perHost := 1 + 2*etcdPerHost // the tunnel flow and two per endpoint
	var lat []time.Duration
	before := a.Metric(b, "ofctl_agent_flow_mods_total")
	for k := range hosts {
		h := 960 + k // no endpoint moved to or from these (etcdChangeOne)
		ops := []clientv3.Op{clientv3.OpDelete(etcd.HostKey(etcdPrefix, etcdHostName(h)))}
		for j := range etcdPerHost {
			ip, _ := etcdEndpoint(h, j, 0)
			ops = append(ops, clientv3.OpDelete(etcd.EndpointKey(etcdPrefix, etcdNet.Name, ip, etcdHostName(h))))
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		etcdWaitFlows(b, node, flows-(k+1)*perHost, time.Minute)
		lat = append(lat, time.Since(start))
	}
	time.Sleep(time.Second)
	mods := (a.Metric(b, "ofctl_agent_flow_mods_total") - before) / hosts
	return changeResult{mods: mods, p50: quantile(lat, 0.5)}
}

func etcdPutCtx(b *testing.B, c *clientv3.Client, key, value string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value); err != nil {
		b.Fatal(err)
	}
}

// etcdHostHex is host's tunnel IP as l2_forward flows load it into reg2.
func etcdHostHex(host int) string {
	ip := etcdHostIP(host).As4()
	return fmt.Sprintf("%#x", uint32(ip[0])<<24|uint32(ip[1])<<16|uint32(ip[2])<<8|uint32(ip[3]))
}

// etcdWaitFlow waits until the l2_forward flow for mac sends to host, and
// returns how long the dump that showed it took (ovs-ofctl's process and
// ovs-vswitchd's walk of the table's 100,000 flows).
func etcdWaitFlow(b *testing.B, node *testbed.Node, mac net.HardwareAddr, host int) time.Duration {
	b.Helper()
	want := etcdHostHex(host)
	match := fmt.Sprintf("table=%d,dl_dst=%s", pipeline.L2Forward.ID(), mac)
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		var err error
		asked := time.Now()
		if out, err = node.OfctlErr("dump-flows", agentBridge, match); err == nil && strings.Contains(out, want) {
			return time.Since(asked)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("no l2_forward flow for %s to %s after 30s:\n%s", mac, want, out)
	return 0
}

// etcdListTook is the agent's initial list time, from its log.
func (a *daemon) etcdListTook(b *testing.B) time.Duration {
	b.Helper()
	return logDuration(b, a.logLine(b, "etcd listed"), "took")
}

// saveProfile keeps the agent's heap profile, log and smaps in dir, if set
// (OFCTL_BENCH_PROFILE_DIR), for `go tool pprof`.
func (a *daemon) saveProfile(b *testing.B, dir string) {
	b.Helper()
	if dir == "" {
		return
	}
	resp, err := http.Get("http://" + a.Listen + "/debug/pprof/heap")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	logData, _ := os.ReadFile(a.LogPath)
	smaps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", a.Pid()))
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "etcd-agent.heap"), data, 0o644),
		os.WriteFile(filepath.Join(dir, "etcd-agent.smaps"), smaps, 0o644),
		os.WriteFile(filepath.Join(dir, "etcd-agent.log"), logData, 0o644)); err != nil {
		b.Fatal(err)
	}
}

// cpuProfile records the agent's first 40 s of CPU into dir, if set.
func (a *daemon) cpuProfile(b *testing.B, dir string) <-chan struct{} {
	done := make(chan struct{})
	if dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for range 100 {
			resp, err := http.Get("http://" + a.Listen + "/debug/pprof/profile?seconds=40")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = os.WriteFile(filepath.Join(dir, "etcd-agent.cpu"), data, 0o644)
			return
		}
	}()
	return done
}
