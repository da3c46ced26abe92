package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// dockerRuns is how many `docker run` each network mode gets per
// iteration, alternating modes so that load drift hits all alike.
const dockerRuns = 10

// dockerCluster is the view of the Docker benchmark's one host.
const dockerCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: br
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
`

// BenchmarkDockerRun times `docker run --rm <busybox> true` (the docker
// 28.x client against dockerd 20.10 in a test node, testbed.Docker) with
// --network none, on the default bridge and on an ofctl-agent network
// (the agent serving its Docker plugin, Join answered once the endpoint's
// flows are installed), modes alternating in the same run, and reports
// p50 and p99 per mode and the plugin network's p50 over the bridge's
// (issue 15's target: <= 1.3). Every run must succeed.
func BenchmarkDockerRun(b *testing.B) {
	n := testbed.NewNode(b, "br")
	d := testbed.StartDocker(b, n)
	img := d.Image(b)
	file := filepath.Join(b.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(dockerCluster), 0o644); err != nil {
		b.Fatal(err)
	}
	args := append(testbed.AgentArgs(n, "br", "192.0.2.1"), "--cluster-file", file, "--log-level", "info",
		"--docker-plugin", filepath.Join(d.PluginDir(), "ofctl-agent.sock"),
		"--docker-state", filepath.Join(n.Dir, "docker-networks.json"), "--docker-host", d.Host())
	ag := testbed.StartAgent(b, filepath.Join(n.Dir, "agent.log"), args...)
	ag.WaitReady(b, 20*time.Second)
	d.Run(b, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=blue", "blue")
	modes := []string{"none", "bridge", "blue"}
	for i := 0; i < b.N; i++ {
		times := map[string][]time.Duration{}
		for _, m := range modes { // warm: docker0 made, image layers cached, plugin activated
			d.Run(b, "run", "--rm", "--network", m, img, "true")
		}
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
		b.ReportMetric(float64(quantile(times["blue"], 0.5))/float64(quantile(times["bridge"], 0.5)), "ofctl/bridge-p50")
	}
}
