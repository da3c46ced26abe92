package netfilter

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// UnderlayPrefixes returns the prefixes of the addresses equal to ip (the
// host's tunnel address) in the network namespace at nsPath ("": the
// caller's): the underlay's networks, for State.Underlay.
func UnderlayPrefixes(nsPath string, ip netip.Addr) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := inNetNS(nsPath, func() error {
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("listing addresses: %w", err)
		}
		for _, ad := range addrs {
			a, ok := netip.AddrFromSlice(ad.IP.To4())
			if !ok || a != ip {
				continue
			}
			bits, _ := ad.Mask.Size()
			out = append(out, netip.PrefixFrom(a, bits).Masked())
		}
		if len(out) == 0 {
			return fmt.Errorf("no interface holds %s", ip)
		}
		return nil
	})
	return out, err
}
