package netfilter

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// ipRange is an inclusive range of IPv4 addresses, as integers.
type ipRange struct{ lo, hi uint32 }

func addrInt(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func intAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func prefixRange(p netip.Prefix) ipRange {
	lo := addrInt(p.Masked().Addr())
	return ipRange{lo, lo | uint32(uint64(1)<<(32-p.Bits())-1)}
}

// lastAddr is the last address of an IPv4 prefix.
func lastAddr(p netip.Prefix) [4]byte { return intAddr(prefixRange(p).hi).As4() }

// merge returns the prefixes as sorted, disjoint ranges, adjacent ones
// joined.
func merge(ps []netip.Prefix) []ipRange {
	rs := make([]ipRange, 0, len(ps))
	for _, p := range ps {
		rs = append(rs, prefixRange(p))
	}
	slices.SortFunc(rs, func(a, b ipRange) int { return cmp.Compare(a.lo, b.lo) })
	var out []ipRange
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].hi == ^uint32(0) || r.lo <= out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract returns the addresses of a that are not in b (both sorted and
// disjoint).
func subtract(a, b []ipRange) []ipRange {
	var out []ipRange
	for _, r := range a {
		for _, c := range b {
			if c.hi < r.lo || c.lo > r.hi {
				continue
			}
			if c.lo > r.lo {
				out = append(out, ipRange{r.lo, c.lo - 1})
			}
			if c.hi >= r.hi {
				r.lo = 1 // emptied: lo > hi
				r.hi = 0
				break
			}
			r.lo = c.hi + 1
		}
		if r.lo <= r.hi {
			out = append(out, r)
		}
	}
	return out
}

// elements encodes ranges for an interval set: each range's first
// address, and the address after its last one flagged as an interval end
// (none after 255.255.255.255).
func elements(rs []ipRange) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range rs {
		lo := intAddr(r.lo).As4()
		out = append(out, nftables.SetElement{Key: lo[:]})
		if r.hi != ^uint32(0) {
			end := intAddr(r.hi + 1).As4()
			out = append(out, nftables.SetElement{Key: end[:], IntervalEnd: true})
		}
	}
	return out
}

// String prints a range as nft does: an address, a prefix, or first-last.
func (r ipRange) String() string {
	size := uint64(r.hi) - uint64(r.lo) + 1
	if size&(size-1) == 0 && uint64(r.lo)%size == 0 {
		if size == 1 {
			return intAddr(r.lo).String()
		}
		return fmt.Sprintf("%s/%d", intAddr(r.lo), 32-bits.TrailingZeros64(size))
	}
	return fmt.Sprintf("%s-%s", intAddr(r.lo), intAddr(r.hi))
}
