package bench

import (
	"slices"
	"testing"
)

const (
	dpRounds  = 7 // alternations of the two modes
	dpSeconds = 8 // measured seconds per iperf3 run (plus 1 omitted)
)

// BenchmarkDatapath measures TCP throughput (iperf3, one stream) between two
// containers through the agent's pipeline, against the same Open vSwitch
// with a single `priority=0 actions=NORMAL` flow, and reports the medians and
// their ratio (target >= 0.95). Modes alternate on the same bridges, in
// the order ABBA... so that a drift in the machine's load hits both alike.
// Before each run a few pings (all answered) prove the mode forwards; after
// it ovs-vswitchd's datapath counters show whether packets were served by
// the datapath's caches (EMC, megaflows) or went up to the slow path, so the
// comparison is between two cached datapaths. It also reports ovs-vswitchd's
// CPU time per GiB sent (both nodes summed across hosts): on a shared
// machine the throughput of one run swings with the other load, the CPU the
// datapath spends per byte much less.
//
//	flock /tmp/team/bench.lock go test -run '^$' -bench Datapath -benchtime 1x ./bench/
//
// same-host: two containers on one node. gre: one container on each of two
// nodes, the pipeline's flow-based GRE port against NORMAL over a GRE port
// with a fixed remote_ip and key.
func BenchmarkDatapath(b *testing.B) {
	dpRequireTools(b)
	for _, c := range []struct {
		name string
		bed  func(*testing.B) *dpBed
	}{
		{"same-host", dpSameHost},
		{"gre", dpTwoHosts},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := c.bed(b)
			d.startServer(b)
			for i := 0; i < b.N; i++ {
				dpReport(b, d.measure(b))
			}
		})
	}
}

// dpRun is one iperf3 run in one mode.
type dpRun struct {
	gbps      float64
	retrans   int
	stats     dpStats
	cpuPerGiB float64 // ovs-vswitchd CPU seconds per GiB the client sent
}

// dpResults are the runs of each mode, in order.
type dpResults struct{ pipeline, normal []dpRun }

// measure alternates the modes dpRounds times.
func (d *dpBed) measure(b *testing.B) dpResults {
	var r dpResults
	modes := []struct {
		name  string
		apply func(*testing.B)
		runs  *[]dpRun
	}{
		{"pipeline", d.pipelineMode, &r.pipeline},
		{"normal", d.normalMode, &r.normal},
	}
	for round := range dpRounds {
		for k := range modes {
			m := modes[(k+round)%2] // ABBA: pipeline first in even rounds
			m.apply(b)
			d.warm(b, m.name)
			cpu0 := d.clearStats(b)
			res := d.iperf(b, dpSeconds)
			run := dpRun{gbps: res.End.SumReceived.BitsPerSecond / 1e9, retrans: res.End.SumSent.Retransmits, stats: d.stats(b, cpu0)}
			run.cpuPerGiB = run.stats.cpu / (res.sentBytes() / (1 << 30))
			*m.runs = append(*m.runs, run)
			b.Logf("round %d %-8s %.3f Gbit/s, %d retransmits, %.2f vswitchd CPU s/GiB; datapath: %s",
				round, m.name, run.gbps, run.retrans, run.cpuPerGiB, run.stats)
			if round == 0 {
				b.Logf("%s: datapath flows after the run (first node):\n%s", m.name, run.stats.dump)
			}
		}
	}
	return r
}

// dpReport reports medians, the ratio of medians, the spread of the
// per-round ratios, and ovs-vswitchd's CPU per byte: under a noisy machine
// the CPU each byte costs the datapath moves less than the throughput.
func dpReport(b *testing.B, r dpResults) {
	gbps := func(x dpRun) float64 { return x.gbps }
	pipe, norm := dpField(r.pipeline, gbps), dpField(r.normal, gbps)
	ratios := make([]float64, len(pipe))
	for i := range pipe {
		ratios[i] = pipe[i] / norm[i]
	}
	cpu := func(x dpRun) float64 { return x.cpuPerGiB }
	pipeCPU, normCPU := median(dpField(r.pipeline, cpu)), median(dpField(r.normal, cpu))
	upcalls := func(x dpRun) float64 { return float64(x.stats.upcalls) }
	b.ReportMetric(median(pipe), "pipeline-Gbit/s")
	b.ReportMetric(median(norm), "normal-Gbit/s")
	b.ReportMetric(median(pipe)/median(norm), "pipeline/normal")
	b.ReportMetric(slices.Min(ratios), "min-round-ratio")
	b.ReportMetric(slices.Max(ratios), "max-round-ratio")
	b.ReportMetric(pipeCPU, "pipeline-cpu-s/GiB")
	b.ReportMetric(normCPU, "normal-cpu-s/GiB")
	b.ReportMetric(normCPU/pipeCPU, "pipeline/normal-bytes-per-cpu")
	b.ReportMetric(median(dpField(r.pipeline, upcalls)), "pipeline-upcalls/run")
	b.ReportMetric(median(dpField(r.normal, upcalls)), "normal-upcalls/run")
	b.ReportMetric(0, "ns/op")
	b.Logf("pipeline Gbit/s %.3f, normal %.3f; per-round ratios %.3f; vswitchd CPU s/GiB pipeline %.2f normal %.2f",
		pipe, norm, ratios, dpField(r.pipeline, cpu), dpField(r.normal, cpu))
}

// dpField is one number of each run.
func dpField(runs []dpRun, f func(dpRun) float64) []float64 {
	out := make([]float64, len(runs))
	for i, x := range runs {
		out[i] = f(x)
	}
	return out
}

// median of xs (mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
