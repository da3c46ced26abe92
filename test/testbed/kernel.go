package testbed

import "testing"

// NewNetNS creates a bare network namespace (loopback up, IPv6 off), named
// and removed like the others (with every process left in it): a test bed
// of the kernel alone, without OVS, as pkg/netfilter's tests use.
func NewNetNS(t testing.TB, name string) NetNS {
	t.Helper()
	return newNetNS(t, name)
}
