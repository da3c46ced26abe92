package attach

import (
	"errors"
	"fmt"
	"net/netip"
)

// Allocator picks an address for an interface attached without an IP.
// inUse reports the addresses ports on the bridge already hold in the
// network; Next must not return one of them.
type Allocator interface {
	Next(network string, inUse func(netip.Addr) bool) (netip.Prefix, error)
}

// ErrExhausted means a host range has no free address left.
var ErrExhausted = errors.New("no free address")

// HostRange is the part of a network this host hands out.
type HostRange struct {
	Subnet   netip.Prefix // the whole network: its prefix length is the interface's
	Range    netip.Prefix // this host's block inside Subnet
	Reserved []netip.Addr // never handed out (gateway, ...)
}

// RangeAllocator hands out the lowest free address of each network's host
// range, skipping the subnet's network and broadcast addresses.
type RangeAllocator map[string]HostRange

// Next implements Allocator.
func (r RangeAllocator) Next(network string, inUse func(netip.Addr) bool) (netip.Prefix, error) {
	hr, ok := r[network]
	if !ok {
		return netip.Prefix{}, fmt.Errorf("network %q has no address range on this host", network)
	}
	if !hr.Subnet.Addr().Is4() || !hr.Range.Addr().Is4() || !hr.Subnet.Contains(hr.Range.Addr()) || hr.Range.Bits() < hr.Subnet.Bits() {
		return netip.Prefix{}, fmt.Errorf("network %q: range %s is not an IPv4 block inside %s", network, hr.Range, hr.Subnet)
	}
	last := lastAddr(hr.Range)
	for a := hr.Range.Masked().Addr(); ; a = a.Next() {
		if r.usable(hr, a) && !inUse(a) {
			return netip.PrefixFrom(a, hr.Subnet.Bits()), nil
		}
		if a == last {
			return netip.Prefix{}, fmt.Errorf("network %q range %s: %w", network, hr.Range, ErrExhausted)
		}
	}
}

func (RangeAllocator) usable(hr HostRange, a netip.Addr) bool {
	if hr.Subnet.Bits() <= 30 && (a == hr.Subnet.Masked().Addr() || a == lastAddr(hr.Subnet)) {
		return false
	}
	for _, r := range hr.Reserved {
		if r == a {
			return false
		}
	}
	return true
}
