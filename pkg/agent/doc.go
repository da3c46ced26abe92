// Package agent is the daemon's core: it turns events (OVSDB interface
// changes, cluster-view updates, OpenFlow (re)connections) into desired
// state, the desired state into flows per owner (pkg/pipeline), and hands
// them to pkg/reconcile, which diffs against OVS and commits bundles.
//
//	ovsdb interfaces ─┐
//	cluster view ─────┼─> model (owners) ─> reconcile.Set ─> Flush: one bundle ─> OVS
//	openflow connect ─┘                                 └──> Sync: dump, diff, one bundle
//	OVS flow monitor ───> reported drift ──> SyncScopes: dump one table+cookie, one bundle
//
// One goroutine (Run's loop) owns the model; the OpenFlow client's hook and
// the periodic drift check call Sync, which regenerates owners' flows under
// the model lock. Out-of-band changes are repaired as OVS reports them
// (monitor.go); the periodic full comparison is then a rare safety net.
// Start-up is hitless: the model is loaded completely (all interfaces, a
// valid cluster view) before the first OpenFlow connection, so the first
// Sync keeps every flow that is already right; interfaces whose installed
// mark shows they held their address are loaded first, so they keep it.
//
// After every flush and Sync the loop brings each endpoint's status on its
// Interface row up to date (marks.go): installed once its flows are in OVS,
// or why it is refused. The OVSDB client writes them in the background; their
// echoes change nothing.
package agent
