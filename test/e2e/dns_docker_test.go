package e2e

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
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

// TestDNSDockerAcrossHosts (issue 17): two hosts in etcd mode, each its own
// dockerd (daemon.json "dns": the host's own gateway in blue, "dns-search":
// blue.ofctl.internal) and agent serving the plugin. `docker run --network
// blue --name c2` on host B is resolvable by name from a Docker container
// on host A: the plugin writes c2's name, B's agent publishes it with the
// endpoint record, A's resolver answers it, and the ping crosses the tunnel.
func TestDNSDockerAcrossHosts(t *testing.T) {
	testbed.RequireDocker(t)
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	const prefix = "/e2e-dns-docker"
	for _, n := range []cluster.Network{dnBlue, dnRed} {
		etPut(t, c, etcd.NetworkKey(prefix, n.Name), string(etcd.EncodeNetwork(n)))
	}
	gw := []string{"10.100.1.1", "10.100.2.1"}
	var hosts []*dkHost
	for _, name := range []string{"ea", "eb"} {
		hosts = append(hosts, &dkHost{name: name, node: testbed.NewNode(t, name)})
	}
	testbed.Underlay(t, hosts[0].node, hosts[1].node, etTunnel(0), etTunnel(1))
	for i, h := range hosts {
		h.docker = testbed.StartDockerWith(t, h.node, testbed.DockerOpts{Daemon: map[string]any{
			"dns": []string{gw[i]}, "dns-search": []string{"blue.ofctl.internal"}}})
		args := append(testbed.AgentArgs(h.node, h.name, etTunnel(i).Addr().String()),
			"--cluster-backend", "etcd", "--etcd-endpoints", srv.Endpoint(), "--etcd-prefix", prefix,
			"--etcd-lease-ttl", dnTTL.String(), "--etcd-dial-timeout", "1s", "--verify-interval", "300ms",
			"--cluster-file", filepath.Join(h.node.Dir, "no-cluster-file.yaml"), "--gateways", "blue="+gw[i],
			"--docker-plugin", filepath.Join(h.docker.PluginDir(), "ofctl-agent.sock"),
			"--docker-state", filepath.Join(h.node.Dir, "docker-networks.json"), "--docker-host", h.docker.Host())
		h.agent = testbed.StartAgent(t, filepath.Join(h.node.Dir, "agent-"+h.name+".log"), args...)
		h.agent.WaitReady(t, 20*time.Second)
		h.img = h.docker.Image(t)
		h.docker.Run(t, dkCreate...)
	}
	ha, hb := hosts[0], hosts[1]
	ha.run(t, "c1")
	start := time.Now()
	addr := hb.run(t, "c2")
	testbed.Eventually(t, 40*time.Second, func() bool {
		return slices.Contains(dnServed(t, &dnHost{agent: ha.agent})["blue"], "c2")
	}, "host ea never answered c2 (a Docker container of host eb): %v", dnServed(t, &dnHost{agent: ha.agent}))
	t.Logf("c2 (host eb) in host ea's names %v after docker run started", time.Since(start).Round(time.Millisecond))
	testbed.Eventually(t, 20*time.Second, func() bool { ok, _ := ha.ping("c1", addr, 1); return ok },
		"c1 (ea) never reached c2's address %s (eb) (control)", addr)
	for _, name := range []string{"c2", "c2.blue.ofctl.internal"} {
		out, err := ha.docker.RunErr("exec", "c1", "ping", "-c1", "-W2", name)
		if err != nil || !strings.Contains(out, "PING "+name+" ("+addr.String()+")") || !strings.Contains(out, "1 packets received") {
			t.Errorf("host ea: docker exec c1 ping -c1 %s (c2 is %s on eb): %v\n%s", name, addr, err, out)
		}
	}
	// A fresh container, no per-container flag: the daemon's dns setting.
	if out, err := ha.docker.RunErr("run", "--rm", "--network", "blue", ha.img, "nslookup", "c2"); err != nil || !strings.Contains(out, addr.String()) {
		t.Errorf("host ea: docker run --network blue nslookup c2: %v\n%s", err, out)
	}
	// Removed on B: gone from A's names too.
	hb.docker.Run(t, "rm", "-f", "c2")
	testbed.Eventually(t, 40*time.Second, func() bool {
		return !slices.Contains(dnServed(t, &dnHost{agent: ha.agent})["blue"], "c2")
	}, "host ea still answers c2 after docker rm -f on eb: %v", dnServed(t, &dnHost{agent: ha.agent}))
}
