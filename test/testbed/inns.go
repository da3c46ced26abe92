package testbed

import (
	"net"

	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/netnsrun"
)

// InNetNS runs fn on a thread in namespace ns: the sockets fn opens (a
// listener, a connection) belong to ns and keep working from any
// goroutine afterwards.
func InNetNS(ns NetNS, fn func() error) error { return netnsrun.Path(ns.Path(), fn) }

// Listen opens a listener inside ns, closed when the test ends.
func Listen(t testing.TB, ns NetNS, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := InNetNS(ns, func() (err error) { l, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Dial opens a TCP connection from inside ns, closed when the test ends.
func Dial(t testing.TB, ns NetNS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := InNetNS(ns, func() (err error) { c, err = net.Dial("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
