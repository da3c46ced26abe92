// Package openflow is the controller side of an OpenFlow 1.3 connection to
// Open vSwitch, built on the message types of github.com/contiv/libOpenflow
// (which has no connection handling).
//
// # Connection
//
//	c, err := openflow.Dial(ctx, openflow.Config{Addr: "unix:/run/openvswitch/br-int.mgmt"})
//	c.DatapathID()
//	xid, err := c.Send(flowMod)             // fire-and-forget, batched with other writes
//	err = c.Barrier(ctx)                    // errors of earlier Sends (joined *OFError)
//	err = c.Pipeline(ctx, msgs)             // send all, one barrier, their errors
//	reply, err := c.Request(ctx, msg)       // one reply, matched by xid
//	flows, err := c.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables, Cookie: k, CookieMask: m})
//	stats, err := c.PortStats(ctx, openflow13.P_ANY)
//	tables, err := c.TableStats(ctx)        // flows per table, counted by the switch
//	ports, err := c.PortDesc(ctx)
//	sub := c.SubscribePortStatus(64)        // <-sub.C
//	mon, err := c.MonitorFlows(ctx, req)    // <-mon.C: flow changes by others
//	<-c.Done(); c.Err(); c.Close()
//
// Dial accepts "unix:PATH" and "tcp:HOST:PORT". It sends a HELLO offering
// only 1.3 and refuses any other version with a *VersionError (telling the
// switch with OFPET_HELLO_FAILED), reads the features reply, then enables
// port-status messages: a bridge's .mgmt socket is a service connection,
// which gets asynchronous messages only after SET_CONFIG with a nonzero
// miss_send_len; SET_ASYNC then limits them to port status.
//
// The connection assigns xids, the version and the length of every message
// it sends. A writer goroutine batches queued messages into few syscalls
// (Send blocks only while Config.MaxQueuedBytes are queued). The reader
// goroutine never blocks on callers: replies complete waiting requests,
// multipart replies are gathered until the last one (OFPMPF_REPLY_MORE),
// echo requests are answered. Keepalive: when the switch has been silent
// for EchoInterval an echo request is sent; when it stays silent for
// DeadInterval the connection ends with ErrDeadPeer. Requests without a
// context deadline get Config.RequestTimeout.
//
// # Errors
//
// An OFPT_ERROR is an *OFError with the type and code and their names
// (e.g. OFPET_BAD_MATCH/OFPBMC_BAD_FIELD, ONF bundle codes OFPBFC_*) and the
// failing message: the connection remembers the last SentHistory messages
// by xid (type, and for flow_mods command, table, priority, cookie, and
// the bundle they were added to). Errors for fire-and-forget messages wait
// (up to MaxLateErrors) for the next Barrier or Pipeline, which returns
// them joined. Branch with errors.As(err, &*OFError) or
// errors.Is(err, &OFError{Type: t, Code: c}). Connection-level sentinels:
// ErrClosed, ErrDeadPeer, ErrPeerClosed, ErrMalformed.
//
// # Bundles
//
//	b, err := c.Bundle(ctx)                 // atomic + ordered (OpenBundle for other flags)
//	err = b.Add(msg)                        // pipelined, no wait
//	err = b.Commit(ctx)                     // or b.Discard(ctx)
//
// Open vSwitch validates a bundled message when it is added and, if it is
// bad, reports it but keeps the bundle: committing would install the
// others. Commit therefore first sends a barrier; if any add failed it
// discards the bundle. The open request is not waited for: it is answered
// before the barrier, where Commit checks it, so a bundle costs two round
// trips (barrier, commit). A failed Commit returns a *BundleError holding the
// *OFError of each failing message (the bundle-add message and the message
// inside share one xid, so Open vSwitch's error names it) and, for a
// commit-time failure, the OFPBFC_MSG_FAILED of the commit. In every failed
// case the switch's flow tables are unchanged.
//
// # Events
//
// Port-status events go to every Subscription without blocking the
// reader: when a subscriber's buffer is full the event is dropped and
// counted in Subscription.Dropped (re-read the ports with PortDesc then).
//
// # Flow monitor
//
//	m, err := c.MonitorFlows(ctx, openflow.FlowMonitorRequest{TableID: openflow.AllTables})
//	for ev := range m.C { ev.Kind; ev.Updates[i].TableID, .Cookie, .Event }
//	m.Close(ctx)
//
// Open vSwitch reports flow changes made by other connections (ovs-ofctl,
// another controller) with their table, priority, cookie and match; this
// connection's own changes come abbreviated (only the xid), unless
// MonitorOwn is set. On OpenFlow 1.3 this is the ONF extension (exp_type
// 1870, see flowmon.go; Open vSwitch refuses Nicira's NXST_FLOW_MONITOR on
// 1.3). When its queue towards the connection grows past 128 kB Open vSwitch
// sends FlowMonitorPaused, stops reporting, and later FlowMonitorResumed.
// Events queue without blocking the reader; a consumer that falls behind
// gets FlowMonitorLost. A request the switch refuses fails at the barrier
// that follows it: Open vSwitch 3.1 answers it with an unroutable error of
// another OpenFlow version (ignored by the reader) or with nothing.
//
// # Reconnecting client
//
//	cl, err := openflow.NewClient(openflow.ClientConfig{Conn: cfg, OnConnect: replay})
//	go cl.Run(ctx)                          // until ctx ends
//	c, err := cl.Wait(ctx); cl.Current(); cl.State(); cl.SubscribePortStatus(n)
//
// Run dials, runs OnConnect with the fresh connection (replay the desired
// state there) and redials with exponential backoff and jitter when the
// connection ends or the hook fails. State reports connected, connection
// and failure counts for metrics; OnStateChange is called on changes.
//
// # Bytes from the switch
//
// Every decoder checks lengths before handing bytes to libOpenflow and
// recovers its panics; bad input is an error wrapping ErrMalformed. Only a
// framing violation (a length below 8) or a wrong version (on anything but
// an OFPT_ERROR, see Flow monitor) ends the connection. libOpenflow bugs worked around here: FlowMod marshals OutPort
// where OutGroup belongs and miscounts the length of deletes with
// instructions; NewPortMod leaves version 0; NewHello advertises 1.0; the
// HELLO decoder loops forever on unknown elements; PortStats,
// PortStatsRequest and TableStats have the OpenFlow 1.0 layout; there is no port
// description decoder; PortStatus decoding drops the MAC and name; most
// decoders index without length checks. Fuzz targets (fuzz_test.go) cover
// every decoder, seeded with messages captured from Open vSwitch 3.1.
package openflow
