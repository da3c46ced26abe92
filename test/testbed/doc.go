// Package testbed runs real Open vSwitch for tests: each Node is a network
// namespace with its own ovsdb-server and userspace ovs-vswitchd (run directory
// under a temp dir), containers are namespaces joined to a node by veth pairs,
// and Underlay links two nodes with a br-phy bridge so GRE works between them.
//
// Everything a test creates carries the prefix "ofat-<pid>-" and is removed in
// t.Cleanup, even when the test fails. Processes are stopped by the pid in their
// pidfile, never by name. Leftovers of a crashed run (whose pid is gone) are
// removed the first time a process uses the package.
//
// ovs-vswitchd runs with --enable-dummy, so benchmarks can add thousands of
// cheap ports (type=dummy) that get real ofports without kernel devices.
//
// Tests call Require first: without root or OVS binaries it skips, except when
// CI=true, where it fails.
package testbed
