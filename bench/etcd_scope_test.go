package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// Scoped remote flows (docs/etcd.md "Flows only where needed"): scopeNets
// networks, scopeHosts remote hosts each with scopePerHost endpoints in one
// network (host h in network h % scopeNets): 100 hosts x 10 endpoints per
// network. The agent under test, with the
// default scoping, gets local endpoints in 0, 1, then all networks; at
// each step its flows (ovs-ofctl dump-aggregate, checked against the count
// pkg/pipeline gives) and memory are read.
const (
	scopeNets    = 10
	scopeHosts   = 1000
	scopePerHost = 10
)

func scopeNet(k int) cluster.Network {
	return cluster.Network{Name: fmt.Sprintf("n%d", k), VNI: uint32(1000 + k),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k), 0, 0}), 16)}
}

func scopeEndpoint(h, j int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(h % scopeNets), byte(h/scopeNets + 1), byte(j + 1)})
}

// scopeLocalIP is this host's endpoint in network k (no remote has it).
func scopeLocalIP(k int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(k), 200, 1}) }

func scopeSeed(b *testing.B, c *clientv3.Client) {
	b.Helper()
	var ops []clientv3.Op
	for k := range scopeNets {
		n := scopeNet(k)
		ops = append(ops, clientv3.OpPut(etcd.NetworkKey(etcdPrefix, n.Name), string(etcd.EncodeNetwork(n))))
	}
	for h := range scopeHosts {
		ops = append(ops, clientv3.OpPut(etcd.HostKey(etcdPrefix, etcdHostName(h)), string(etcd.EncodeHost(etcdHostIP(h)))))
		for j := range scopePerHost {
			ip := scopeEndpoint(h, j)
			ops = append(ops, clientv3.OpPut(etcd.EndpointKey(etcdPrefix, scopeNet(h%scopeNets).Name, ip, etcdHostName(h)),
				string(etcd.EncodeEndpoint(arp.DerivedMAC(ip)))))
		}
	}
	for i := 0; i < len(ops); i += etcdTxnOps {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Txn(ctx).Then(ops[i:min(i+etcdTxnOps, len(ops))]...).Commit()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// scopeWantFlows is br-int's flow count per pkg/pipeline with local
// endpoints in the first used networks (one each).
func scopeWantFlows(used int) int {
	var nets []pipeline.Network
	for k := range scopeNets {
		n := scopeNet(k)
		nets = append(nets, pipeline.Network{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet})
	}
	total := len(pipeline.FixedFlows(agentTunnelOF))
	for _, n := range nets {
		total += len(pipeline.NetworkFlows(n))
	}
	for h := range scopeHosts {
		rh := pipeline.RemoteHost{Name: etcdHostName(h), TunnelIP: etcdHostIP(h)}
		total += len(pipeline.RemoteHostFlows(rh, nets))
		if h%scopeNets < used {
			for j := range scopePerHost {
				ip := scopeEndpoint(h, j)
				total += len(pipeline.RemoteEndpointFlows(nets[h%scopeNets], rh,
					pipeline.RemoteEndpoint{Network: nets[h%scopeNets].Name, IP: ip, MAC: arp.DerivedMAC(ip), Host: rh.Name}))
			}
		}
	}
	for k := range used {
		ip := scopeLocalIP(k)
		total += len(pipeline.EndpointFlows(nets[k], pipeline.Endpoint{Network: nets[k].Name, Port: "x", OFPort: 1, IP: ip, MAC: arp.DerivedMAC(ip)}))
	}
	return total
}

// BenchmarkEtcdScoped reports, for 0, 1 and 10 networks used on this host,
// br-int's flows and the agent's RSS and live heap, and the time from the
// OVSDB transaction adding the first endpoint of a network to the
// network's remote endpoints' flows in OVS; then the same with
// --all-remote-flows and no local endpoint ("all").
func BenchmarkEtcdScoped(b *testing.B) {
	testbed.Require(b)
	srv := etcdtest.Start(b)
	scopeSeed(b, srv.Client(b))
	node := testbed.NewNode(b, "esc")
	for i := 0; i < b.N; i++ {
		args := append(daemonArgs(node, etcdNodeName), "--cluster-backend", "etcd", "--etcd-endpoints", srv.Endpoint(),
			"--etcd-prefix", etcdPrefix, "--cluster-file", filepath.Join(node.Dir, "none.yaml"))
		a := startDaemon(b, filepath.Join(node.Dir, "agent-scope.log"), args...)
		report := func(used int) {
			want := scopeWantFlows(used)
			etcdWaitFlows(b, node, want, 2*time.Minute)
			time.Sleep(2 * time.Second)
			rss, heap := a.memory(b)
			b.ReportMetric(float64(want), fmt.Sprintf("flows/used=%d", used))
			b.ReportMetric(rss, fmt.Sprintf("rss-MiB/used=%d", used))
			b.ReportMetric(heap, fmt.Sprintf("heap-MiB/used=%d", used))
			b.ReportMetric(a.Metric(b, `ofctl_agent_etcd_records{kind="endpoint"}`), fmt.Sprintf("claims/used=%d", used))
		}
		report(0)
		// etcd's traffic to this host: what etcd sends while every claim
		// of a network the host does not use is rewritten.
		b.ReportMetric(scopeChurn(b, srv, scopeNets-1), "etcd-sent-KiB/churn-unused-net")
		var bringIn []time.Duration
		for k := range scopeNets {
			ip := scopeLocalIP(k)
			port := fmt.Sprintf("l%d", k)
			start := time.Now()
			node.Vsctl(b, "add-port", agentBridge, port, "--", "set", "interface", port, "type=internal",
				fmt.Sprintf("external_ids:%s=%s", endpoint.KeyNetwork, scopeNet(k).Name),
				fmt.Sprintf("external_ids:%s=%s", endpoint.KeyIP, ip))
			etcdWaitFlows(b, node, scopeWantFlows(k+1), time.Minute)
			bringIn = append(bringIn, time.Since(start))
			if k == 0 {
				report(1)
				b.ReportMetric(scopeChurn(b, srv, 0), "etcd-sent-KiB/churn-used-net")
			}
		}
		report(scopeNets)
		b.ReportMetric(ms(quantile(bringIn, 0.5)), "first-endpoint-p50-ms")
		b.ReportMetric(ms(quantile(bringIn, 1)), "first-endpoint-max-ms")
		for k := range scopeNets {
			node.Vsctl(b, "del-port", agentBridge, fmt.Sprintf("l%d", k))
		}
		etcdWaitFlows(b, node, scopeWantFlows(0), time.Minute)
		a.Stop(syscall.SIGTERM)

		// The reference: the same agent with --all-remote-flows, no local
		// endpoint, programs every network's remote endpoints.
		all := startDaemon(b, filepath.Join(node.Dir, "agent-scope-all.log"), append(args, "--all-remote-flows")...)
		want := scopeWantFlows(scopeNets) - scopeNets*len(pipeline.EndpointFlows(pipeline.Network{Name: "n", VNI: 1, Subnet: scopeNet(0).Subnet},
			pipeline.Endpoint{Network: "n", Port: "x", OFPort: 1, IP: scopeLocalIP(0), MAC: arp.DerivedMAC(scopeLocalIP(0))}))
		etcdWaitFlows(b, node, want, 2*time.Minute)
		time.Sleep(2 * time.Second)
		rss, heap := all.memory(b)
		b.ReportMetric(all.Metric(b, `ofctl_agent_etcd_records{kind="endpoint"}`), "claims/all")
		b.ReportMetric(scopeChurn(b, srv, scopeNets-1), "etcd-sent-KiB/churn-all")
		b.ReportMetric(float64(want), "flows/all")
		b.ReportMetric(rss, "rss-MiB/all")
		b.ReportMetric(heap, "heap-MiB/all")
		all.Stop(syscall.SIGTERM)
	}
	b.ReportMetric(0, "ns/op")
}

// scopeChurn rewrites every claim of network k (same values: each put is
// one watch event, no view change) and returns what etcd sent its
// clients meanwhile, in KiB (etcd_network_client_grpc_sent_bytes_total
// of its /metrics: the watches' events, plus the small answers to these
// puts and the agent's probes).
func scopeChurn(b *testing.B, srv *etcdtest.Server, k int) float64 {
	b.Helper()
	c := srv.Client(b)
	var ops []clientv3.Op
	for h := k; h < scopeHosts; h += scopeNets {
		for j := range scopePerHost {
			ip := scopeEndpoint(h, j)
			ops = append(ops, clientv3.OpPut(etcd.EndpointKey(etcdPrefix, scopeNet(k).Name, ip, etcdHostName(h)),
				string(etcd.EncodeEndpoint(arp.DerivedMAC(ip)))))
		}
	}
	before := etcdSentBytes(b, srv)
	for i := 0; i < len(ops); i += etcdTxnOps {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Txn(ctx).Then(ops[i:min(i+etcdTxnOps, len(ops))]...).Commit()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // the watches deliver
	return (etcdSentBytes(b, srv) - before) / 1024
}

// etcdSentBytes is etcd's etcd_network_client_grpc_sent_bytes_total.
func etcdSentBytes(b *testing.B, srv *etcdtest.Server) float64 {
	b.Helper()
	resp, err := http.Get(srv.Endpoint() + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	v, err := testbed.Sample(body, "etcd_network_client_grpc_sent_bytes_total")
	if err != nil {
		b.Fatal(err)
	}
	return v
}
