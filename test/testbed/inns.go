package testbed

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// InNetNS runs fn on a thread in namespace ns: the sockets fn opens (a
// listener, a connection) belong to ns and keep working from any
// goroutine afterwards.
func InNetNS(ns NetNS, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // unlocked only once back home; otherwise the thread ends with the goroutine
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(ns.Path())
		if err != nil {
			done <- fmt.Errorf("network namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- ferr
	}()
	return <-done
}

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
