package e2e

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestReadmeAttach runs the README's attach/detach commands as written on
// host-a of docs/cluster.example.yaml, with an agent on host-a and host-b
// each. Only what a test bed changes is changed: the binary's path, the
// namespace paths (/var/run/netns/c1 and c2 are test namespaces) and, added
// after the command, the test node's OVSDB, namespace and agent socket. It checks what a new user expects: the container's route
// covers the whole network (10.100.0.0/16), and it reaches a blue container
// on the other host.
func TestReadmeAttach(t *testing.T) {
	testbed.Require(t)
	repo := dmRepoRoot(t)
	cmds := rmAttachCommands(t, repo)
	file := filepath.Join(repo, "docs/cluster.example.yaml")
	a, b := testbed.NewNode(t, "host-a"), testbed.NewNode(t, "host-b")
	testbed.Underlay(t, a, b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	agStart(t, a, "host-a", "192.0.2.1", file)
	agStart(t, b, "host-b", "192.0.2.2", file)
	remote := agContainer(t, b, "rb", "10.100.2.10/16") // a blue container on host-b

	ns := map[string]string{"/var/run/netns/c1": atNewNS(t, "c1"), "/var/run/netns/c2": atNewNS(t, "c2")}
	bin := testbed.AgentBinary(t)
	run := func(cmd string) {
		t.Helper()
		args := strings.Fields(cmd)
		for i, arg := range args {
			if n, ok := ns[arg]; ok {
				args[i] = atNSPath(n)
			}
		}
		args = append(args[1:], "--ovsdb", a.DBAddr(), "--netns-host", a.NS.Path())
		if args[0] == "attach" {
			args = append(args, "--agent-socket", testbed.AgentSocket(a))
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	c1, c2 := ns["/var/run/netns/c1"], ns["/var/run/netns/c2"]
	run(cmds[0])
	run(cmds[1])
	// c2 gets the lowest free address: .1 is the host's gateway.
	for _, c := range []struct{ ns, addr string }{{c1, "10.100.1.5/16"}, {c2, "10.100.1.2/16"}} {
		if got := atMustCmd(t, "ip", "-n", c.ns, "-o", "-4", "addr", "show", "dev", "eth1"); !strings.Contains(got, "inet "+c.addr+" ") {
			t.Fatalf("%s: eth1 %q, want %s", c.ns, got, c.addr)
		}
		if got := atMustCmd(t, "ip", "-n", c.ns, "route"); !strings.Contains(got, "10.100.0.0/16 dev eth1") {
			t.Fatalf("%s: routes %q, want 10.100.0.0/16 on eth1", c.ns, got)
		}
		out, err := exec.Command("ip", "netns", "exec", c.ns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", remote.Addr.Addr().String()).CombinedOutput()
		if err != nil {
			t.Fatalf("%s cannot reach the blue container on host-b: %v\n%s", c.ns, err, out)
		}
	}
	run(cmds[2])
	run(cmds[3])
	for _, n := range []string{c1, c2} {
		if out, err := atCmd("ip", "-n", n, "link", "show", "eth1"); err == nil {
			t.Fatalf("eth1 still in %s after detach:\n%s", n, out)
		}
	}
	testbed.Eventually(t, 5*time.Second, func() bool {
		return !strings.Contains(a.Vsctl(t, "list-ports", "br-int"), "_l")
	}, "ports left on host-a: %s", a.Vsctl(t, "list-ports", "br-int"))
}

// rmAttachCommands reads the shell block of the README's attach section.
func rmAttachCommands(t *testing.T, repo string) []string {
	t.Helper()
	cmds := rmCommands(t, repo, "## `ofctl-agent attach` / `detach`")
	if len(cmds) != 4 || !strings.HasPrefix(cmds[0], "ofctl-agent attach ") || !strings.HasPrefix(cmds[3], "ofctl-agent detach ") {
		t.Fatalf("README attach block changed: %q", cmds)
	}
	return cmds
}
