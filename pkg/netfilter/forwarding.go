package netfilter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ofctl-agent/ofctl-agent/pkg/netnsrun"
)

// IPv4 forwarding is decided per input interface: the kernel forwards a
// packet only when net.ipv4.conf.<in>.forwarding is 1 for the interface it
// came in by (net.ipv4.ip_forward is net.ipv4.conf.all.forwarding, which
// sets every interface's flag when written). So the agent turns it on for
// the gateway ports (containers' traffic out) and the uplinks (replies and
// published ports in), and nowhere else; it never turns it off (another
// program may rely on it).

func forwardingFile(ifname string) string { return "/proc/sys/net/ipv4/conf/" + ifname + "/forwarding" }

// enableForwarding writes 1 to the forwarding flag of each interface whose
// flag is not 1. Interfaces that do not exist (yet) are returned as missing.
func enableForwarding(ifaces []string) (enabled, missing []string, err error) {
	for _, name := range ifaces {
		path := forwardingFile(name)
		cur, rerr := os.ReadFile(path)
		switch {
		case errors.Is(rerr, fs.ErrNotExist):
			missing = append(missing, name)
			continue
		case rerr != nil:
			err = errors.Join(err, fmt.Errorf("reading %s: %w", path, rerr))
			continue
		case strings.TrimSpace(string(cur)) == "1":
			continue
		}
		if werr := os.WriteFile(path, []byte("1\n"), 0o644); werr != nil {
			err = errors.Join(err, fmt.Errorf("turning on forwarding for %s: %w", name, werr))
			continue
		}
		enabled = append(enabled, name)
	}
	return enabled, missing, err
}

// defaultRouteInterfaces returns the interfaces of the IPv4 default routes
// (each next hop of a multipath one).
func defaultRouteInterfaces() ([]string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []string
	add := func(index int) {
		if l, err := netlink.LinkByIndex(index); err == nil && !slices.Contains(out, l.Attrs().Name) {
			out = append(out, l.Attrs().Name)
		}
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex > 0 {
			add(r.LinkIndex)
		}
		for _, nh := range r.MultiPath {
			add(nh.LinkIndex)
		}
	}
	return out, nil
}

// inNetNS runs fn with its OS thread in the network namespace at path
// (the caller's own when path is empty): /proc/sys/net and netlink
// sockets opened there belong to that namespace.
func inNetNS(path string, fn func() error) error { return netnsrun.Path(path, fn) }
