package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// cniRounds is how many ADDs each plugin gets per iteration, alternating.
const cniRounds = 40

// cniEndpoints is how many endpoints the host has before the ADDs:
// 1,000, or OFCTL_BENCH_CNI_ENDPOINTS (how OVS's floor grows with the
// bridge's ports).
func cniEndpoints(b *testing.B) int {
	v := os.Getenv("OFCTL_BENCH_CNI_ENDPOINTS")
	if v == "" {
		return 1000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 7000 { // 10.100.100.1 and up, inside the host's 10.100.0.0/17
		b.Fatalf("OFCTL_BENCH_CNI_ENDPOINTS=%q: want 0..7000", v)
	}
	return n
}

// cniCluster is the CNI benchmark's one host, with a range large enough
// for the 1,000 endpoints (10.100.100.0 and up) and the ADDs (from
// 10.100.0.2, the allocator's lowest free).
const cniCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: cn
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.0.0/17 }
`

// BenchmarkCNIAdd times CNI ADD (the plugin process run as a runtime
// runs it, stdin to result) of ofctl-cni (agent IPAM, answered once the
// agent has installed the endpoint's flows) on a host with 1,000
// endpoints, next to the reference bridge plugin with host-local
// (Debian's containernetworking-plugins) on the same host, alternating in
// the same run; each ADD into a fresh namespace, DEL after it (untimed).
// Reports p50/p99 of both and ofctl-cni's p50 over bridge's (issue 16's
// target: <= 1.5). Also timed in the same rounds, as OVS's floor: adding a
// veth to the bridge and waiting until ovs-vswitchd has applied it (no
// agent, no flows), in one lean transaction (ovsdb-client: the port, and
// next_cfg bumped) and a wait for cur_cfg, and with ovs-vsctl add-port
// (which reads the whole bridge first).
func BenchmarkCNIAdd(b *testing.B) {
	n := testbed.NewNode(b, "cn")
	file := filepath.Join(b.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(cniCluster), 0o644); err != nil {
		b.Fatal(err)
	}
	ag := testbed.StartAgent(b, filepath.Join(n.Dir, "agent.log"),
		append(testbed.AgentArgs(n, "cn", "192.0.2.1"), "--cluster-file", file, "--log-level", "info")...)
	ag.WaitReady(b, 20*time.Second)
	endpoints := cniEndpoints(b)
	populate(b, n, endpoints)
	bin := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "ofctl-cni"), "../cmd/ofctl-cni").CombinedOutput(); err != nil {
		b.Fatalf("build ofctl-cni: %v\n%s", err, out)
	}
	for _, p := range []string{"bridge", "host-local"} {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", p), filepath.Join(bin, p)); err != nil {
			b.Fatal(err)
		}
	}
	confs := map[string]string{
		"ofctl-cni": fmt.Sprintf(`{"cniVersion":"1.0.0","name":"blue","type":"ofctl-cni","ovsdb":%q,"agentSocket":%q,"installTimeout":"60s"}`,
			n.DBAddr(), testbed.AgentSocket(n)),
		"bridge": fmt.Sprintf(`{"cniVersion":"1.0.0","name":"br","type":"bridge","bridge":"cnibr0","isGateway":true,`+
			`"ipam":{"type":"host-local","subnet":"10.200.0.0/16","dataDir":%q}}`, b.TempDir()),
	}
	plugins := []string{"ofctl-cni", "bridge"}
	for i := 0; i < b.N; i++ {
		times := map[string][]time.Duration{}
		phases := map[string][]time.Duration{} // ofctl-cni's own: elapsed at each phase of its ADD
		for r := -1; r < cniRounds; r++ {      // round -1 warms both (bridge makes cnibr0)
			for _, p := range plugins {
				ns := cniNS(b)
				id := fmt.Sprintf("bench-%d-%d", i, r)
				start := time.Now()
				out := cniExec(b, n, bin, p, "ADD", id, ns, confs[p])
				if r >= 0 {
					times[p] = append(times[p], time.Since(start))
					for _, m := range phaseRE.FindAllStringSubmatch(out, -1) {
						if d, err := time.ParseDuration(m[2]); err == nil {
							phases[m[1]] = append(phases[m[1]], d)
						}
					}
				}
				cniExec(b, n, bin, p, "DEL", id, ns, confs[p])
				_ = exec.Command("ip", "netns", "delete", filepath.Base(ns)).Run()
			}
			for _, vsctl := range []bool{false, true} {
				name, d := "ovsdb-client insert + wait for ovs-vswitchd", floorAddPort(b, n, vsctl)
				if vsctl {
					name = "ovs-vsctl add-port"
				}
				if r >= 0 {
					times[name] = append(times[name], d)
				}
			}
		}
		for _, p := range plugins {
			p50, p99 := quantile(times[p], 0.5), quantile(times[p], 0.99)
			b.ReportMetric(ms(p50), p+"-p50-ms")
			b.ReportMetric(ms(p99), p+"-p99-ms")
			b.Logf("%s ADD at %d endpoints: p50 %.1f ms, p99 %.1f ms (%v)", p, endpoints, ms(p50), ms(p99), times[p])
		}
		for _, p := range []string{"ovsdb-client insert + wait for ovs-vswitchd", "ovs-vsctl add-port"} {
			b.Logf("OVS's floor, %s of a veth at %d endpoints: p50 %.1f ms, p99 %.1f ms, p50 %.2fx bridge's", p, endpoints,
				ms(quantile(times[p], 0.5)), ms(quantile(times[p], 0.99)), float64(quantile(times[p], 0.5))/float64(quantile(times["bridge"], 0.5)))
		}
		b.ReportMetric(ms(quantile(times["ovsdb-client insert + wait for ovs-vswitchd"], 0.5)), "ovs-floor-p50-ms")
		b.ReportMetric(float64(quantile(times["ofctl-cni"], 0.5))/float64(quantile(times["bridge"], 0.5)), "ofctl/bridge-p50")
		for _, ph := range []string{"network from the agent", "attached", "installed"} {
			b.Logf("ofctl-cni ADD, time from its start to %q: p50 %.1f ms, p99 %.1f ms", ph, ms(quantile(phases[ph], 0.5)), ms(quantile(phases[ph], 0.99)))
		}
	}
}

// populate adds count endpoint ports (type patch, in pairs) to br-int
// with one OVSDB transaction per 100 and waits for their flows.
func populate(b *testing.B, n *testbed.Node, count int) {
	b.Helper()
	for lo := 0; lo < count; lo += 100 {
		var sb strings.Builder
		sb.WriteString(`["Open_vSwitch"`)
		var ports []string
		for i := lo; i < min(lo+100, count); i++ {
			ip := fmt.Sprintf("10.100.%d.%d", 100+i/250, 1+i%250)
			fmt.Fprintf(&sb, `,{"op":"insert","table":"Interface","uuid-name":"i%d","row":{"name":"e%d","type":"patch","options":["map",[["peer","e%d"]]],`+
				`"external_ids":["map",[[%q,"blue"],[%q,%q]]]}}`, i, i, i^1, endpoint.KeyNetwork, endpoint.KeyIP, ip)
			fmt.Fprintf(&sb, `,{"op":"insert","table":"Port","uuid-name":"p%d","row":{"name":"e%d","interfaces":["named-uuid","i%d"]}}`, i, i, i)
			ports = append(ports, fmt.Sprintf(`["named-uuid","p%d"]`, i))
		}
		fmt.Fprintf(&sb, `,{"op":"mutate","table":"Bridge","where":[["name","==","br-int"]],"mutations":[["ports","insert",["set",[%s]]]]}]`,
			strings.Join(ports, ","))
		if out, err := exec.Command("ovsdb-client", "transact", n.DBAddr(), sb.String()).CombinedOutput(); err != nil || bytes.Contains(out, []byte(`"error"`)) {
			b.Fatalf("ovsdb-client transact: %v: %.500s", err, out)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, _ := exec.Command("ovs-vsctl", "--db="+n.DBAddr(), "--bare", "--columns=name", "find", "Interface",
			"external_ids:ofctl-agent.installed!=[]").CombinedOutput()
		if got := strings.Count(string(out), "\n"); got >= count {
			return
		} else if time.Now().After(deadline) {
			b.Fatalf("after 3m the agent installed %d of %d endpoints", got, count)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// floorAddPort times adding a fresh veth end to the node's bridge until
// ovs-vswitchd has applied it: with ovsdb-client (one transaction that
// inserts the port and bumps next_cfg, then one that waits for cur_cfg to
// reach it, as ovs-vsctl waits) or with ovs-vsctl add-port. Making the
// veth and removing both afterwards are not timed.
func floorAddPort(b *testing.B, n *testbed.Node, vsctl bool) time.Duration {
	b.Helper()
	const host, peer = "cnifloor0", "cnifloor1"
	n.Exec(b, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	n.Exec(b, "ip", "link", "set", host, "up")
	start := time.Now()
	if vsctl {
		if out, err := exec.Command("ovs-vsctl", "--db="+n.DBAddr(), "add-port", "br-int", host).CombinedOutput(); err != nil {
			b.Fatalf("ovs-vsctl add-port: %v %s", err, out)
		}
	} else {
		out := transact(b, n, fmt.Sprintf(`["Open_vSwitch",
			{"op":"insert","table":"Interface","uuid-name":"i","row":{"name":%[1]q}},
			{"op":"insert","table":"Port","uuid-name":"p","row":{"name":%[1]q,"interfaces":["named-uuid","i"]}},
			{"op":"mutate","table":"Bridge","where":[["name","==","br-int"]],"mutations":[["ports","insert",["named-uuid","p"]]]},
			{"op":"mutate","table":"Open_vSwitch","where":[],"mutations":[["next_cfg","+=",1]]},
			{"op":"select","table":"Open_vSwitch","where":[],"columns":["next_cfg"]}]`, host))
		var res []struct {
			Rows []struct {
				NextCfg int `json:"next_cfg"`
			} `json:"rows"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res) != 5 || len(res[4].Rows) != 1 {
			b.Fatalf("insert port: %v %s", err, out)
		}
		transact(b, n, fmt.Sprintf(`["Open_vSwitch",{"op":"wait","timeout":60000,"table":"Open_vSwitch","where":[],`+
			`"columns":["cur_cfg"],"until":"==","rows":[{"cur_cfg":%d}]}]`, res[4].Rows[0].NextCfg))
	}
	d := time.Since(start)
	if out, err := exec.Command("ovs-vsctl", "--db="+n.DBAddr(), "del-port", "br-int", host).CombinedOutput(); err != nil {
		b.Fatalf("ovs-vsctl del-port: %v %s", err, out)
	}
	n.Exec(b, "ip", "link", "del", host)
	return d
}

// transact runs one OVSDB transaction with ovsdb-client and returns its
// answer; any error fails the benchmark.
func transact(b *testing.B, n *testbed.Node, txn string) []byte {
	b.Helper()
	out, err := exec.Command("ovsdb-client", "transact", n.DBAddr(), txn).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte(`"error"`)) {
		b.Fatalf("ovsdb-client transact: %v: %.500s", err, out)
	}
	return out
}

// cniNS makes a namespace for one ADD.
func cniNS(b *testing.B) string {
	b.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := fmt.Sprintf("%s%d-%s-cni", testbed.Prefix, os.Getpid(), hex.EncodeToString(r[:]))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return filepath.Join("/var/run/netns", name)
}

// phaseRE finds ofctl-cni's debug lines on its ADD's phases.
var phaseRE = regexp.MustCompile(`msg="add: ([^"]*)".*? elapsed=(\S+)`)

// cniExec runs one CNI command of plugin in the node's namespace and
// returns its output (ofctl-cni's with its debug log).
func cniExec(b *testing.B, n *testbed.Node, bin, plugin, command, id, netns, conf string) string {
	b.Helper()
	cmd := exec.Command("nsenter", "--net="+n.NS.Path(), filepath.Join(bin, plugin))
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", "CNI_PATH=" + bin, "OFCTL_CNI_DEBUG=1",
		"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", plugin, command, err, out)
	}
	return string(out)
}
