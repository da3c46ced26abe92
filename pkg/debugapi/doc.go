// Package debugapi serves what the person on call opens first: the flows
// actually in OVS compared with the agent's desired flows, and a packet
// trace through the pipeline as the agent's model predicts it, side by side
// with OVS's own ofproto/trace. Handlers returns the http.Handlers; the
// `ofctl-agent dump-flows` and `ofctl-agent trace` commands are their
// clients.
//
// # GET /debug/flows
//
// Every flow of the bridge (OpenFlow flow stats, read on a connection
// opened for the request, never the agent's), grouped by table, each in
// ovs-ofctl syntax with its packet and byte counters, the owner it belongs
// to ("endpoint vc1 (blue 10.100.1.10)", "host hb", "network blue",
// "fixed") and a status: expected (in OVS as desired), missing (desired,
// absent), unexpected (in OVS, not desired: foreign or stale), different
// (desired table, priority and match with other actions or cookie).
// Flows that pkg/flow cannot decode are shown from their raw bytes with a
// note. Query parameters (all optional, combined with AND):
//
//	table=NAME|ID        one table (classifier, spoof_guard, ... or 0-254)
//	endpoint=PORT|IP     a local endpoint's flows (its cookie, port, MAC, IP),
//	                     or for another IPv4 address the flows matching it
//	                     or its derived MAC
//	port=OFPORT|NAME     flows matching in_port or outputting to the port
//	network=NAME         flows of the network's VNI (reg0, tun_id) or owned
//	                     by it or its endpoints
//	status=S[,S...]      expected, missing, unexpected, different
//	format=text|json     text (default) or JSON
//
// JSON (FlowsReport): {"bridge", "filters": {param: value}, "summary":
// {status: count}, "tables": [{"table", "name", "doc", "flows": [{"status",
// "table", "priority", "cookie" ("0x..."), "flow" (ovs-ofctl text, as
// `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints it), "desired"
// (for different), "owner", "packets", "bytes", "duration_seconds",
// "note"}]}]}. Without filters every pipeline table is listed.
//
// # GET /debug/trace
//
// A packet given by its headers, traced twice: through a model of the
// agent's desired flows (Model: highest priority wins; set_field, load,
// move, output, goto_table) and by ovs-vswitchd's ofproto/trace over its
// unixctl socket (Unixctl). The report lists per table the flow each side
// hit and flags every difference (hit flow, actions, cookie, outputs,
// rewritten fields). Parameters (TraceParams):
//
//	in_port=OFPORT|NAME  required
//	arp | ip | icmp      the kind of packet (else inferred from arp_* / nw_*)
//	dl_src, dl_dst       default: the input endpoint's MAC; ARP broadcast,
//	                     or for IP the MAC of nw_dst (local or derived)
//	arp_op, arp_spa, arp_tpa, arp_sha, arp_tha   default: a request from
//	                     the input endpoint; arp_tpa required
//	nw_src, nw_dst       default nw_src: the input endpoint's IP
//	tun_src, tun_id      tunnel metadata, for packets from the tunnel port
//	format=text|json
//
// JSON (TraceReport): {"bridge", "packet" (the flow given to
// ofproto/trace), "model" and "ovs": {"steps": [{"table", "table_name",
// "matched", "priority", "cookie", "match", "actions", "owner", "notes",
// "cannot_evaluate"}], "outputs", "changed": {field: value}, "verdict",
// "cannot_evaluate"}, "ovs_error", "datapath_actions", "differences":
// [sentence...], "ovs_text"}. "ovs" is absent and "ovs_error" set when
// ofproto/trace could not run. The model evaluates only the fields of
// Packet and the actions above: at a table where a flow matching anything
// else could decide, or where the winning flow runs another action, its
// path stops with "cannot_evaluate" saying which (and the text output with
// CANNOT EVALUATE), and the report counts it as a difference.
//
// Bad query parameters get HTTP 400 with the parameter and the reason; no
// OpenFlow connection to the switch gets 503.
package debugapi
