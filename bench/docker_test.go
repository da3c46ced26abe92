package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// dockerRuns is how many `docker run` each network mode gets per
// iteration, alternating modes so that load drift hits all alike.
const dockerRuns = 10

// BenchmarkDockerRun times `docker run --rm <busybox> true` (the docker
// 28.x client against dockerd 20.10 in a test node, testbed.Docker) with
// --network none and on the default bridge, and reports p50 and p99 per
// mode. It is the reference the ofctl-agent network (issue 15's target:
// <= 1.3x the default bridge) is to be measured against in the same run.
// Every run must succeed.
func BenchmarkDockerRun(b *testing.B) {
	n := testbed.NewNode(b, "br")
	d := testbed.StartDocker(b, n)
	img := d.Image(b)
	modes := []string{"none", "bridge"}
	for i := 0; i < b.N; i++ {
		times := map[string][]time.Duration{}
		d.Run(b, "run", "--rm", "--network", "bridge", img, "true") // warm: docker0 made, image layers cached
		for r := 0; r < dockerRuns; r++ {
			for _, m := range modes {
				start := time.Now()
				d.Run(b, "run", "--rm", "--network", m, img, "true")
				times[m] = append(times[m], time.Since(start))
			}
		}
		for _, m := range modes {
			p50, p99 := quantile(times[m], 0.5), quantile(times[m], 0.99)
			b.ReportMetric(ms(p50), m+"-p50-ms")
			b.ReportMetric(ms(p99), m+"-p99-ms")
			b.Logf("docker run --network %s: p50 %.0f ms, p99 %.0f ms (%s)", m, ms(p50), ms(p99), fmt.Sprint(times[m]))
		}
		b.ReportMetric(float64(quantile(times["bridge"], 0.5))/float64(quantile(times["none"], 0.5)), "bridge/none-p50")
	}
}
