// Package ovsdb is everything the agent does over OVSDB (RFC 7047), on
// github.com/ovn-org/libovsdb: it keeps the integration bridge as configured,
// adds and removes ports, keeps the GRE tunnel port in place and reports the
// interfaces on the bridge as a stream of events.
//
// A Client owns one connection at a time. Run connects, checks the models in
// this package against the server's schema (a mismatch is an error, retried),
// monitors the Open_vSwitch, Bridge, Port and Interface tables (only the
// columns the models hold) and reconnects with backoff when ovsdb-server goes
// away; each connection starts from a fresh libovsdb client, so a restart of
// ovsdb-server yields a full resynchronisation:
//
//	c, err := ovsdb.New(ovsdb.Config{Endpoint: "unix:/run/openvswitch/db.sock",
//		Bridge: ovsdb.BridgeConfig{Name: "br-int", DatapathType: "system"}, NodeName: host})
//	go c.Run(ctx)
//	err = c.EnsureBridge(ctx)            // waits for a connection (bounded by ctx)
//	err = c.EnsureTunnelPort(ctx, ovsdb.TunnelSpec{Name: "gre0", OFPort: 10})
//	err = c.AddPort(ctx, ovsdb.PortSpec{Name: "veth1", ExternalIDs: ids})
//	<-c.Synced()                         // the bridge's interfaces were read once
//	sub := c.Subscribe()                 // batches: current interfaces as Added, then changes
//	for batch := range sub.C() { ... }
//	c.SetExternalIDs(uuid, ids)          // background write ("" removes a key)
//	err = c.WaitInstalled(ctx, "veth1", ip) // the agent installed veth1 for ip
//	c.Close()
//
// Once EnsureBridge or EnsureTunnelPort succeeded, the Client watches the rows
// through its monitor cache and puts them back (fail_mode, protocols,
// datapath_type, other_config:hwaddr, the tunnel port's type, options and
// ofport_request, or the whole bridge or port when deleted) with a
// transaction; Stats counts those repairs, connections and failures.
//
// Interface events are computed by diffing the interfaces on the bridge
// before and after every change seen in the cache: after a reconnect all of
// them, otherwise only those whose Interface or Port row changed or whose
// port joined or left the bridge (the cache's row events say which), so a
// subscriber receives every change of state, in order: nothing is dropped,
// and a row that came and went while the connection was down is not
// reported. A subscriber that has not taken an interface's event yet gets
// one event with its latest state instead of several (Subscription): a
// flapping interface costs O(1) memory. Rows are passed on as they are (no
// ofport yet, ofport -1, no external_ids): judging them is the consumer's
// job.
//
// The agent writes the status keys of endpoint interfaces (pkg/endpoint:
// installed, error) with SetExternalIDs, which returns at once and leaves
// the transactions to a background writer; a port writer (attach, a CNI or
// Docker plugin) waits for them with WaitInstalled, on the monitor.
//
// libovsdb's own reconnect (client.WithReconnect) is not used: in v0.7.0 it
// panics when its backoff gives up and keeps reconnecting after Close when the
// server is down at that moment. Known limit: libovsdb v0.7.0 panics (in its
// reader goroutine, out of our reach) on a malformed UUID such as ["uuid"]
// from the server; ovsdb-server never sends one.
package ovsdb
