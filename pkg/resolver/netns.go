package resolver

import (
	"context"
	"net"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/netnsrun"
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
func runInNetNS(path string, fn func() error) error { return netnsrun.Path(path, fn) }
