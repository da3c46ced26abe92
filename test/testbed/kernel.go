package testbed

import (
	"regexp"
	"testing"
)

// NewNetNS creates a bare network namespace (loopback up, IPv6 off), named
// and removed like the others (with every process left in it): a test bed
// of the kernel alone, without OVS, as pkg/netfilter's tests use.
func NewNetNS(t testing.TB, name string) NetNS {
	t.Helper()
	return newNetNS(t, name)
}

// dadState matches the IPv6 duplicate-address-detection flags `ip -o addr`
// prints while a link-local address is being checked ("tentative"), or
// after ("dadfailed"): the kernel changes them on its own, a second or so
// after the link comes up.
var dadState = regexp.MustCompile(` (tentative|dadfailed|optimistic)\b`)

// StableAddrs is `ip -o addr` output without the flags the kernel changes by
// itself (IPv6 DAD state), for comparing two snapshots of an interface that
// nobody touched.
func StableAddrs(out string) string { return dadState.ReplaceAllString(out, "") }
