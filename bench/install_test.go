package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// flowMod encodes benchFlow(i) as an OpenFlow 1.3 ADD.
func (f exactFlow) flowMod() *openflow13.FlowMod {
	fm := openflow13.NewFlowMod()
	fm.Cookie = benchCookie
	fm.TableId = benchTable
	fm.Priority = benchPriority
	fm.Match.AddField(*openflow13.NewEthTypeField(0x0800))
	fm.Match.AddField(*openflow13.NewEthDstField(net.HardwareAddr(f.mac[:]), nil))
	fm.Match.AddField(*openflow13.NewIpv4DstField(net.IP(f.ip[:]), nil))
	apply := openflow13.NewInstrApplyActions()
	_ = apply.AddAction(openflow13.NewActionOutput(benchOutPort), false)
	fm.AddInstruction(apply)
	return fm
}

func flowMods(n int) []util.Message {
	msgs := make([]util.Message, n)
	for i := range msgs {
		msgs[i] = benchFlow(i).flowMod()
	}
	return msgs
}

// addMods encodes flows as OFPFC_ADD flow_mods.
func addMods(b *testing.B, flows []flow.Flow) []util.Message {
	b.Helper()
	msgs := make([]util.Message, 0, len(flows))
	for _, f := range flows {
		fm, err := f.FlowMod(openflow13.FC_ADD)
		if err != nil {
			b.Fatalf("encode %s: %v", f, err)
		}
		msgs = append(msgs, fm)
	}
	return msgs
}

// installMethod installs msgs through the agent's connection.
type installMethod func(ctx context.Context, c *openflow.Conn, msgs []util.Message) error

func installBundle(ctx context.Context, c *openflow.Conn, msgs []util.Message) error {
	b, err := c.Bundle(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := b.Add(m); err != nil {
			_ = b.Discard(ctx)
			return err
		}
	}
	return b.Commit(ctx)
}

func installPipelined(ctx context.Context, c *openflow.Conn, msgs []util.Message) error {
	return c.Pipeline(ctx, msgs)
}

// BenchmarkFlowInstall installs N exact-match flows into a real OVS bridge in
// three ways, on the same switch in one run: ovs-ofctl --bundle add-flows
// (the reference), the agent's connection with one bundle, and the agent's
// connection pipelined with a final barrier. Each iteration starts from an
// empty bridge and ends when OVS confirmed (commit reply or barrier); the flow
// count is then checked with ovs-ofctl. Encoding the flow_mods is included in
// the agent's time; writing ovs-ofctl's input file is not.
func BenchmarkFlowInstall(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			node := testbed.NewNode(b, "bfi")
			node.AddBridge(b, "br-int")
			ctx := context.Background()
			conn, err := openflow.Dial(ctx, openflow.Config{Addr: node.MgmtAddr("br-int"), RequestTimeout: 2 * time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			var ref, bundle, piped time.Duration
			for i := 0; i < b.N; i++ {
				reset(b, node, conn)
				ref += ofctlBundleInstall(b, node, "br-int", n)
				check(b, node, n)

				reset(b, node, conn)
				bundle += timeAgent(b, conn, installBundle, n)
				check(b, node, n)

				reset(b, node, conn)
				piped += timeAgent(b, conn, installPipelined, n)
				check(b, node, n)
			}
			per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
			b.ReportMetric(per(ref), "ofctl-bundle-s")
			b.ReportMetric(per(bundle), "agent-bundle-s")
			b.ReportMetric(per(piped), "agent-pipelined-s")
			b.ReportMetric(per(bundle)/per(ref), "bundle/ofctl")
			b.ReportMetric(per(piped)/per(ref), "pipelined/ofctl")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func timeAgent(b *testing.B, conn *openflow.Conn, install installMethod, n int) time.Duration {
	start := time.Now()
	if err := install(context.Background(), conn, flowMods(n)); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func reset(b *testing.B, node *testbed.Node, conn *openflow.Conn) {
	node.Ofctl(b, "del-flows", "br-int")
	if err := conn.Barrier(context.Background()); err != nil {
		b.Fatal(err)
	}
	check(b, node, 0)
}

func check(b *testing.B, node *testbed.Node, want int) {
	if got := countFlows(b, node, "br-int"); got != want {
		b.Fatalf("OVS holds %d flows, want %d", got, want)
	}
}
