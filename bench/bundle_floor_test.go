package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// floorBundles is how many bundles BenchmarkBundleFloor sends per case.
const floorBundles = 200

// BenchmarkBundleFloor is the reference for BenchmarkAgentAddEndpoint: the
// same five flows of one new endpoint, in one bundle sent with pkg/openflow
// on a bare connection (no agent, no model, no event), on a bridge with 0
// or 10,000 programmed endpoints (ports and 50,009 flows). The time from
// opening the bundle to the commit reply is what ovs-vswitchd needs; an
// agent's add cannot beat it. Bundles are 250 ms apart, as the adds are.
// The same flows sent as plain flow_mods and one barrier (one round trip,
// not atomic) are measured too ("pipelined"): the bundle's second round
// trip is not what makes OVS slow at 10,000 ports.
func BenchmarkBundleFloor(b *testing.B) {
	for _, n := range []int{0, benchEndpoints} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				e := newAgentBed(b, "bflr")
				e.programmed(b, n, nil).stop()
				time.Sleep(2 * time.Second) // let ovs-vswitchd settle
				for pass, bundle := range []bool{true, false} {
					unit := "bundle"
					if !bundle {
						unit = "pipelined"
					}
					lat, cpu := e.bundleRounds(b, n+pass*floorBundles, pass*floorBundles, bundle)
					b.ReportMetric(ms(quantile(lat, 0.5)), unit+"-p50-ms")
					b.ReportMetric(ms(quantile(lat, 0.99)), unit+"-p99-ms")
					b.ReportMetric(ms(quantile(lat, 1)), unit+"-max-ms")
					b.ReportMetric(ms(cpu)/floorBundles, unit+"-vswitchd-cpu-ms")
				}
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

// bundleRounds installs the flows of floorBundles new endpoints (numbered
// from first, ofports from 60,000+port), each in one bundle or, unless
// bundle, as flow_mods and a barrier. It returns their latencies and the
// CPU ovs-vswitchd used meanwhile (pauses included).
func (e *agentBed) bundleRounds(b *testing.B, first, port int, bundle bool) ([]time.Duration, time.Duration) {
	b.Helper()
	ctx := context.Background()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: e.node.MgmtAddr(agentBridge)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	install := installPipelined
	if bundle {
		install = installBundle
	}
	lat := make([]time.Duration, floorBundles)
	cpu0 := procCPU(b, e.node.VswitchdPid())
	for k := range lat {
		net, ep := benchEndpoint(first+k, 0)
		ep.OFPort = uint32(60_000 + port + k) // unused by the programmed ports: its in_port flow is new
		mods := addMods(b, pipeline.EndpointFlows(net, ep))
		time.Sleep(250 * time.Millisecond)
		start := time.Now()
		if err := install(ctx, c, mods); err != nil {
			b.Fatal(err)
		}
		lat[k] = time.Since(start)
	}
	cpu := procCPU(b, e.node.VswitchdPid()) - cpu0
	if got, want := e.flowCount(), pipelineFlows(first+floorBundles); got != want {
		b.Fatalf("br-int holds %d flows after the bundles, want %d", got, want)
	}
	return lat, cpu
}
