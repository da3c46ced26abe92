package attach

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
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

const bridge = "br-int"

// bed is one test node with br-int and an Attacher whose host namespace is
// the node's (where its ovs-vswitchd opens the veths).
type bed struct {
	node  *testbed.Node
	ports vsctlPorts
	a     *Attacher
}

func newBed(t *testing.T) *bed {
	t.Helper()
	testbed.Require(t)
	checkThreads(t)
	node := testbed.NewNode(t, "at")
	node.AddBridge(t, bridge)
	ports := vsctlPorts{db: node.DBAddr(), bridge: bridge}
	hostNS, err := OpenNetNS(node.NS.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostNS.Close() })
	return &bed{node: node, ports: ports, a: &Attacher{Ports: ports, HostNS: hostNS}}
}

// newCtr makes a "container": a named network namespace ofat-<pid>-<rand>-name,
// removed at cleanup.
func newCtr(t *testing.T, name string) Container {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := fmt.Sprintf("%s%d-%s-%s", testbed.Prefix, os.Getpid(), hex.EncodeToString(b[:]), name)
	mustCmd(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	mustCmd(t, "ip", "-n", ns, "link", "set", "lo", "up")
	c, err := NetNSTarget(filepath.Join("/var/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func nsOf(c Container) string { return filepath.Base(c.NetNS.Path()) }

func cmdOut(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cmdOut(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkThreads fails the test if, at its end, any thread of the process is
// in another network namespace than the one it started in.
func checkThreads(t *testing.T) {
	t.Helper()
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
		for _, task := range tasks {
			if got, err := os.Readlink(task); err == nil && got != want {
				t.Errorf("thread %s is in %s, not %s", task, got, want)
			}
		}
	})
}

var ourLink = regexp.MustCompile(`\bof[0-9a-f]{11}_[lc]\b`)

// assertClean checks with ip and ovs-vsctl that nothing of ours is left: no
// port on br-int, no veth end in the node, nothing but lo in the containers.
func (b *bed) assertClean(t *testing.T, ctrs ...Container) {
	t.Helper()
	testbed.Eventually(t, 5*time.Second, func() bool {
		return !ourLink.MatchString(b.node.Exec(t, "ip", "-o", "link"))
	}, "veth left in the node:\n%s", b.node.Exec(t, "ip", "-o", "link"))
	if out := b.node.Vsctl(t, "list-ports", bridge); strings.TrimSpace(out) != "" {
		t.Errorf("ports left on %s: %s\n%s", bridge, out, b.node.Vsctl(t, "show"))
	}
	for _, c := range ctrs {
		out := mustCmd(t, "ip", "-n", nsOf(c), "-o", "link")
		if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 1 || !strings.Contains(out, "lo:") {
			t.Errorf("container %s has more than lo:\n%s", nsOf(c), out)
		}
	}
}

// assertAttached checks an attachment of c (whose namespace is named ns)
// with ip (both namespaces) and ovs-vsctl.
func (b *bed) assertAttached(t *testing.T, c Container, ns, ifname, addr, mac, gw string, mtu int) string {
	t.Helper()
	host := HostIfName(c.ID, ifname)
	link := mustCmd(t, "ip", "-n", ns, "-o", "link", "show", ifname)
	for _, want := range []string{"mtu " + strconv.Itoa(mtu), "link/ether " + mac, ",UP"} {
		if !strings.Contains(link, want) {
			t.Errorf("container link lacks %q:\n%s", want, link)
		}
	}
	if a := mustCmd(t, "ip", "-n", ns, "-o", "addr", "show", "dev", ifname); !strings.Contains(a, "inet "+addr+" ") {
		t.Errorf("container addresses lack %s:\n%s", addr, a)
	}
	if r := mustCmd(t, "ip", "-n", ns, "route", "show", "default"); gw != "" && !strings.Contains(r, "default via "+gw+" dev "+ifname) {
		t.Errorf("no default route via %s:\n%s", gw, r)
	}
	hl := b.node.Exec(t, "ip", "-o", "link", "show", host)
	if !strings.Contains(hl, "mtu "+strconv.Itoa(mtu)) || !strings.Contains(hl, ",UP") {
		t.Errorf("host end %s:\n%s", host, hl)
	}
	out := b.node.Vsctl(t, "--format=json", "--columns=name,external_ids", "list", "interface", host)
	ifs, err := parseInterfaces([]byte(out))
	if err != nil || len(ifs) != 1 {
		t.Fatalf("interface %s: %v %v", host, ifs, err)
	}
	for k, v := range map[string]string{endpoint.KeyIP: strings.Split(addr, "/")[0], endpoint.KeyMAC: mac,
		endpoint.KeyOwner: "attach", endpoint.KeyContainerID: c.ID, endpoint.KeyContainerIface: ifname} {
		if got := ifs[0].ExternalIDs[k]; got != v {
			t.Errorf("external_ids:%s = %q, want %q", k, got, v)
		}
	}
	testbed.Eventually(t, 5*time.Second, func() bool {
		n, err := strconv.Atoi(strings.TrimSpace(b.node.Vsctl(t, "get", "interface", host, "ofport")))
		return err == nil && n > 0
	}, "no ofport for %s: %s", host, b.node.Vsctl(t, "list", "interface", host))
	return host
}

func TestIntegrationAttachDetach(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c1, c2 := newCtr(t, "c1"), newCtr(t, "c2")
	o := Options{Network: "blue", IP: mustPrefix("10.77.0.5/24"), Gateway: mustAddr("10.77.0.1")}

	att, err := b.a.Attach(ctx, c1, o)
	if err != nil || !att.Created {
		t.Fatalf("attach: %+v, %v", att, err)
	}
	host := b.assertAttached(t, c1, nsOf(c1), "eth1", "10.77.0.5/24", "0a:58:0a:4d:00:05", "10.77.0.1", 1450)
	// The bed's bridge is netdev: auto turned offload off in the container
	// only (ovs-vswitchd sends complete frames into the host end).
	if ctr, hst := ethtoolTx(t, nsOf(c1), "eth1"), ethtoolTx(t, string(b.node.NS), host); att.TxChecksum != "off" || ctr != "off" || hst != "on" {
		t.Errorf("tx checksumming: attach says %q, ethtool says %s in the container, %s on the host end", att.TxChecksum, ctr, hst)
	}
	before := testbed.StableAddrs(mustCmd(t, "ip", "-n", nsOf(c1), "-o", "addr"))

	if att, err = b.a.Attach(ctx, c1, o); err != nil || att.Created {
		t.Fatalf("second attach: %+v, %v; want no change", att, err)
	}
	if after := testbed.StableAddrs(mustCmd(t, "ip", "-n", nsOf(c1), "-o", "addr")); after != before {
		t.Errorf("idempotent attach changed the container:\n%s\n%s", before, after)
	}
	// Turned back on by hand: attaching again turns it off again.
	mustCmd(t, "ip", "netns", "exec", nsOf(c1), "ethtool", "-K", "eth1", "tx", "on")
	if att, err = b.a.Attach(ctx, c1, o); err != nil || att.Created || ethtoolTx(t, nsOf(c1), "eth1") != "off" {
		t.Fatalf("attach again after ethtool -K tx on: %+v, %v; ethtool says %s", att, err, ethtoolTx(t, nsOf(c1), "eth1"))
	}
	other := o
	other.IP = mustPrefix("10.77.0.6/24")
	if _, err := b.a.Attach(ctx, c1, other); !errors.As(err, new(*MismatchError)) {
		t.Fatalf("attach with another ip: %v, want a MismatchError", err)
	}
	var de *DuplicateError
	if _, err := b.a.Attach(ctx, c2, o); !errors.As(err, &de) || de.HeldBy != host {
		t.Fatalf("duplicate ip: %v, want a DuplicateError naming %s", err, host)
	}
	b.assertNoLink(t, c2, "eth1")

	// An allocator that gives an address c1's port holds is caught by the
	// bridge's own check, and the address released; then one it gives is
	// plumbed, and a ping through OVS (NORMAL switching) proves the
	// plumbing carries traffic.
	alloc := Options{Network: "blue", Gateway: mustAddr("10.77.0.1"), MTU: 1400, IfName: "net0"}
	fa := &fakeAlloc{j: &journal{}, next: []netip.Prefix{mustPrefix("10.77.0.5/24"), mustPrefix("10.77.0.4/24")}, held: map[netip.Addr]string{}}
	b.a.Alloc = fa
	if _, err := b.a.Attach(ctx, c2, alloc); !errors.As(err, &de) || len(fa.held) != 0 {
		t.Fatalf("allocated an address a port holds: %v (held %v), want a DuplicateError and nothing held", err, fa.held)
	}
	b.assertNoLink(t, c2, "net0")
	if att, err = b.a.Attach(ctx, c2, alloc); err != nil || att.Options.IP.String() != "10.77.0.4/24" {
		t.Fatalf("allocated attach: %+v, %v; want 10.77.0.4/24", att.Options.IP, err)
	}
	b.assertAttached(t, c2, nsOf(c2), "net0", "10.77.0.4/24", "0a:58:0a:4d:00:04", "10.77.0.1", 1400)
	b.node.Ofctl(t, "add-flow", bridge, "actions=NORMAL")
	if out, err := cmdOut("ip", "netns", "exec", nsOf(c2), "ping", "-n", "-q", "-c", "2", "-i", "0.1", "-W", "2", "10.77.0.5"); err != nil {
		t.Fatalf("ping between attached containers: %v\n%s", err, out)
	}

	if err := b.a.Detach(ctx, c1.ID, "eth1"); err != nil {
		t.Fatal(err)
	}
	b.assertNoLink(t, c1, "eth1")
	if err := b.a.Detach(ctx, c1.ID, "eth1"); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("second detach: %v, want ErrNotAttached", err)
	}
	if removed, err := b.a.DetachAll(ctx, c2.ID); err != nil || len(removed) != 1 {
		t.Fatalf("detach --all: %v, %v", removed, err)
	}
	b.assertClean(t, c1, c2)
}

func (b *bed) assertNoLink(t *testing.T, c Container, ifname string) {
	t.Helper()
	if out, err := cmdOut("ip", "-n", nsOf(c), "link", "show", ifname); err == nil {
		t.Errorf("%s still in container %s:\n%s", ifname, nsOf(c), out)
	}
	if out, err := cmdOut("ip", "netns", "exec", string(b.node.NS), "ip", "link", "show", HostIfName(c.ID, ifname)); err == nil {
		t.Errorf("host end of %s still in the node:\n%s", ifname, out)
	}
}

func TestIntegrationDetachAllAndPID(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c1, c2 := newCtr(t, "d1"), newCtr(t, "d2")
	// A process in c2's namespace: attach targets it by PID.
	sleeper := exec.Command("ip", "netns", "exec", nsOf(c2), "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	nsPath := fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)
	testbed.Eventually(t, 5*time.Second, func() bool {
		a, _ := os.Readlink(nsPath)
		want, _ := cmdOut("ip", "netns", "exec", nsOf(c2), "readlink", "/proc/self/ns/net")
		return a == strings.TrimSpace(want)
	}, "sleep did not enter %s", nsOf(c2))
	byPID, err := PIDTarget(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { byPID.Close() })

	for i, a := range []struct {
		c   Container
		ip  string
		ifn string
	}{{c1, "10.78.0.2/24", "eth1"}, {c1, "10.78.0.3/24", "eth2"}, {byPID, "10.78.0.4/24", "eth1"}} {
		if _, err := b.a.Attach(ctx, a.c, Options{Network: "n", IP: mustPrefix(a.ip), IfName: a.ifn}); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
	}
	b.assertAttached(t, byPID, nsOf(c2), "eth1", "10.78.0.4/24", "0a:58:0a:4e:00:04", "", 1450)
	if got := b.node.Vsctl(t, "get", "interface", HostIfName(byPID.ID, "eth1"), "external_ids:container_id"); !strings.Contains(got, nsPath) {
		t.Errorf("container_id of the PID target: %s", got)
	}
	removed, err := b.a.DetachAll(ctx, c1.ID)
	if err != nil || len(removed) != 2 {
		t.Fatalf("detach --all: %v, %v", removed, err)
	}
	if ports := strings.Fields(b.node.Vsctl(t, "list-ports", bridge)); len(ports) != 1 || ports[0] != HostIfName(byPID.ID, "eth1") {
		t.Fatalf("after detach --all of %s: ports %v", c1.ID, ports)
	}
	if err := b.a.Detach(ctx, byPID.ID, "eth1"); err != nil {
		t.Fatal(err)
	}
	b.assertClean(t, c1, c2)
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
