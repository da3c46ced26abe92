package netfilter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ArpIgnoreNone is net.ipv4.conf.<if>.arp_ignore's "do not reply for any
// local address".
const arpIgnoreNone = "8"

// QuietPorts keeps the host's IP stack from answering ARP on the given
// interfaces (the host ends of the containers' veths, in the namespace at
// nsPath; "": the caller's) by setting their arp_ignore to 8.
//
// With the userspace datapath (and for any port OVS reads with a raw
// socket) the host end of a container's veth stays an interface of the
// host's stack too: it sees every frame the container sends. Its ARP
// request for the gateway address (on the gateway port, so a local
// address) would be answered by the host with the veth's own MAC, before
// the pipeline's ARP responder answers with the gateway's: the container
// would then send its outside traffic to a MAC that OVS does not forward
// and that the host, which does not forward from that interface, drops.
// Frames to other MACs never reach the host's IP layer (PACKET_OTHERHOST),
// so nothing else needs quieting. Interfaces that do not exist are
// skipped; it returns those it changed.
func QuietPorts(nsPath string, ifaces []string) (changed []string, err error) {
	err = inNetNS(nsPath, func() error {
		var errs []error
		for _, name := range ifaces {
			path := "/proc/sys/net/ipv4/conf/" + name + "/arp_ignore"
			cur, rerr := os.ReadFile(path)
			switch {
			case errors.Is(rerr, fs.ErrNotExist):
				continue
			case rerr != nil:
				errs = append(errs, fmt.Errorf("reading %s: %w", path, rerr))
				continue
			case strings.TrimSpace(string(cur)) == arpIgnoreNone:
				continue
			}
			if werr := os.WriteFile(path, []byte(arpIgnoreNone+"\n"), 0o644); werr != nil {
				errs = append(errs, fmt.Errorf("quieting ARP on %s: %w", name, werr))
				continue
			}
			changed = append(changed, name)
		}
		return errors.Join(errs...)
	})
	return changed, err
}
