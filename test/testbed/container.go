package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// ContainerOpts describes a container's interface. Zero values are left
// unset (no address, kernel MAC, MTU 1400 to leave room for GRE).
type ContainerOpts struct {
	HostIf string       // host-side veth name in the node's namespace (<= 15 chars); default "v"+name
	IfName string       // interface name inside the container; default "eth0"
	Addr   netip.Prefix // IPv4 address with prefix length
	MAC    net.HardwareAddr
	MTU    int
}

// Container is a network namespace joined to a node by a veth pair. The host
// end stays in the node's namespace, unattached: tests or the agent add it to
// a bridge.
type Container struct {
	Name   string
	NS     NetNS
	HostIf string
	IfName string
	Addr   netip.Prefix
	MAC    net.HardwareAddr
	Node   *Node
}

// AddContainer creates the container namespace and its veth pair.
func (n *Node) AddContainer(t testing.TB, name string, o ContainerOpts) *Container {
	t.Helper()
	if o.HostIf == "" {
		o.HostIf = "v" + name
	}
	if o.IfName == "" {
		o.IfName = "eth0"
	}
	if o.MTU == 0 {
		o.MTU = 1400
	}
	c := &Container{Name: name, NS: newNetNS(t, name), HostIf: o.HostIf, IfName: o.IfName, Addr: o.Addr, Node: n}
	mtu := strconv.Itoa(o.MTU)
	n.Exec(t, "ip", "link", "add", o.HostIf, "mtu", mtu, "type", "veth", "peer", "name", o.IfName, "mtu", mtu, "netns", string(c.NS))
	n.Exec(t, "ip", "link", "set", o.HostIf, "up")
	if o.MAC != nil {
		c.NS.MustExec(t, "ip", "link", "set", o.IfName, "address", o.MAC.String())
	}
	if o.Addr.IsValid() {
		c.NS.MustExec(t, "ip", "addr", "add", o.Addr.String(), "dev", o.IfName)
	}
	c.NS.MustExec(t, "ip", "link", "set", o.IfName, "up")
	mac, err := net.ParseMAC(c.readMAC(t))
	if err != nil {
		t.Fatalf("container %s: %v", name, err)
	}
	c.MAC = mac
	return c
}

func (c *Container) readMAC(t testing.TB) string {
	t.Helper()
	out := c.NS.MustExec(t, "cat", "/sys/class/net/"+c.IfName+"/address")
	return trimNL(out)
}

// Exec runs a command inside the container.
func (c *Container) Exec(t testing.TB, args ...string) string {
	t.Helper()
	return c.NS.MustExec(t, args...)
}

// Ping sends count pings to dst with a short interval and reports whether all
// were answered; the output is returned for logging. It is a positive
// check: for "no answer", use NoAnswer.
func (c *Container) Ping(dst netip.Addr, count int) (bool, string) {
	out, err := c.ping(dst, count)
	return err == nil, out
}

func (c *Container) ping(dst netip.Addr, count int) (string, error) {
	return c.NS.Exec("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", dst.String())
}

// pingSummary is iputils ping's count line.
var pingSummary = regexp.MustCompile(`(?m)^(\d+) packets transmitted, (\d+) received`)

// NoAnswer fails the test unless count pings from c to dst all went out and
// none was answered. A negative check must see its probe run: ping must
// have run in c's namespace, sent count echo requests and exited with
// status 1 (iputils: no reply). A missing namespace, a ping that did not
// run or could not send fails the test like an answer does.
func (c *Container) NoAnswer(t testing.TB, dst netip.Addr, count int) {
	t.Helper()
	if _, err := os.Stat(c.NS.Path()); err != nil {
		t.Fatalf("container %s: no network namespace to ping from: %v", c.Name, err)
	}
	out, err := c.ping(dst, count)
	var ee *exec.ExitError
	m := pingSummary.FindStringSubmatch(out)
	switch {
	case err == nil:
		t.Fatalf("ping %s -> %s was answered:\n%s", c.Name, dst, out)
	case !errors.As(err, &ee) || ee.ExitCode() != 1 || m == nil || m[1] != strconv.Itoa(count) || m[2] != "0":
		t.Fatalf("ping %s -> %s did not run as a probe (want exit status 1 after %d sent, 0 received): %v\n%s",
			c.Name, dst, count, err, out)
	}
}

// AttachTo adds the host end of the veth to a bridge as an OVS port with the
// given ofport_request and external_ids (key=value pairs), the way a user
// with ovs-vsctl would.
func (c *Container) AttachTo(t testing.TB, bridge string, ofport int, externalIDs map[string]string) {
	t.Helper()
	args := []string{"add-port", bridge, c.HostIf, "--", "set", "interface", c.HostIf}
	if ofport > 0 {
		args = append(args, fmt.Sprintf("ofport_request=%d", ofport))
	}
	for k, v := range externalIDs {
		args = append(args, fmt.Sprintf("external_ids:%s=%q", k, v))
	}
	c.Node.Vsctl(t, args...)
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
