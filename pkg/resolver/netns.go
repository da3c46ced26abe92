package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
)

// NetNS opens the resolver's sockets in the network namespace at Path,
// where the gateway ports are (the agent's --netns-host): the listening
// sockets (Config.Listen) and the connections to the upstreams
// (ForwardConfig.Dial). A socket belongs to the namespace it was made in
// for its whole life, so only their creation runs there. Path "" is the
// calling process's own namespace.
type NetNS struct{ Path string }

// Listen is ListenFreebind in the namespace.
func (n NetNS) Listen(addr netip.AddrPort) (u *net.UDPConn, t *net.TCPListener, err error) {
	err = runInNetNS(n.Path, func() error { u, t, err = ListenFreebind(addr); return err })
	return u, t, err
}

// Dial connects to addr from the namespace.
func (n NetNS) Dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = runInNetNS(n.Path, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// runInNetNS runs fn on a thread in the namespace at path ("": here).
func runInNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // unlocked once back home; otherwise the thread ends with the goroutine
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			done <- fmt.Errorf("network namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- fmt.Errorf("entering network namespace %s: %w", path, err)
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
