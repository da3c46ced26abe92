package testbed

import (
	"fmt"
	"net"
	"net/netip"
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
// were answered; the output is returned for logging.
func (c *Container) Ping(dst netip.Addr, count int) (bool, string) {
	out, err := c.NS.Exec("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", dst.String())
	return err == nil, out
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
