package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestDNSDocker: Docker containers on an ofctl-agent network use the
// agent's resolver on their gateway, without per-container flags when the
// daemon's "dns" and "dns-search" name it (daemon.json), or with `--dns
// <gateway> --dns-search <network>.ofctl.internal`: Docker's embedded
// resolver forwards the names it does not know there, from the
// container's address. One host (static mode: local names). A Docker
// container resolves and pings a named namespace container attached beside
// it; the name of a Docker container itself is answered once the Docker
// plugin has written it (ofctl-agent.name, looked up in the Engine API
// after Join), and a container name that is not a DNS label gets none.
func TestDNSDocker(t *testing.T) {
	gw := "10.100.1.1"
	ha := dkSetupWith(t, testbed.DockerOpts{Daemon: map[string]any{"dns": []string{gw}, "dns-search": []string{"blue.ofctl.internal"}}}, "ha")[0]
	c3 := ha.node.AddContainer(t, "c3", testbed.ContainerOpts{Addr: netip.MustParsePrefix("10.100.1.77/16")})
	c3.AttachTo(t, "br-int", 0, map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.77", endpoint.KeyMAC: c3.MAC.String(), endpoint.KeyName: "c3"})
	testbed.Eventually(t, 20*time.Second, func() bool { return slices.Contains(dnServed(t, &dnHost{agent: ha.agent})["blue"], "c3") },
		"ha never answered c3: %v", dnServed(t, &dnHost{agent: ha.agent}))
	dnsFlags := []string{"run", "--rm", "--network", "blue", "--dns", gw, "--dns-search", "blue.ofctl.internal", ha.img}
	noFlags := []string{"run", "--rm", "--network", "blue", ha.img}
	for _, run := range [][]string{noFlags, dnsFlags} {
		for _, name := range []string{"c3", "c3.blue.ofctl.internal"} {
			out, err := ha.docker.RunErr(append(run, "ping", "-c1", "-W2", name)...)
			if err != nil || !strings.Contains(out, "10.100.1.77") {
				t.Errorf("docker %s ping -c1 %s: %v\n%s", strings.Join(run, " "), name, err, out)
			}
		}
	}
	out, err := ha.docker.RunErr(append(dnsFlags, "nslookup", "nobody.blue.ofctl.internal")...)
	if err == nil || !strings.Contains(out, "NXDOMAIN") && !strings.Contains(out, "can't resolve") {
		t.Errorf("nslookup of an unknown name from a Docker container: %v\n%s", err, out)
	}

	t.Run("a Docker container's name", func(t *testing.T) {
		addr := ha.run(t, "web")
		port, _ := ha.ofport(t, "web")
		var ext string
		took := testbed.Eventually(t, 40*time.Second, func() bool {
			ext = ha.node.Vsctl(t, "get", "interface", port, "external_ids")
			return strings.Contains(ext, endpoint.KeyName)
		}, "the Docker plugin never wrote %s on %s: %s", endpoint.KeyName, port, ext)
		if !strings.Contains(ext, endpoint.KeyName+"=web") {
			t.Fatalf("the Docker plugin wrote another name than the container's (web): %s", ext)
		}
		t.Logf("%s=web on %s %v after docker run returned", endpoint.KeyName, port, took)
		testbed.Eventually(t, 20*time.Second, func() bool { return slices.Contains(dnServed(t, &dnHost{agent: ha.agent})["blue"], "web") },
			"ha never answered web: %v", dnServed(t, &dnHost{agent: ha.agent}))
		for _, name := range []string{"web", "web.blue.ofctl.internal"} {
			out, err := ha.docker.RunErr(append(noFlags, "ping", "-c1", "-W2", name)...)
			if err != nil || !strings.Contains(out, addr.String()) {
				t.Errorf("docker run ... ping -c1 %s: %v\n%s", name, err, out)
			}
		}
		// Docker allows '_': not a DNS label, so no name (and a count).
		ha.run(t, "my_db")
		bad, _ := ha.ofport(t, "my_db")
		testbed.Eventually(t, 40*time.Second, func() bool {
			_, metrics, err := ha.agent.Get("/metrics")
			return err == nil && dkSampleWith(metrics, "ofctl_agent_docker_plugin_names_total", "invalid") >= 1
		}, "my_db never refused")
		if ext := ha.node.Vsctl(t, "get", "interface", bad, "external_ids"); strings.Contains(ext, endpoint.KeyName) {
			t.Errorf("a name that is not a DNS label was written: %s", ext)
		}
	})
}
