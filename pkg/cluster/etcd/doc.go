// Package etcd is the cluster view kept in etcd: every agent publishes its
// host and its local endpoints (Publisher) and watches everyone else's
// (Source, a cluster.Source), so that remote endpoints are programmed one
// by one, with any MAC, and follow an endpoint that moves.
//
// Key layout under the prefix P (default /ofctl-agent); values are JSON
// records with "version": 1 (others are rejected):
//
//	P/networks/<name>                {"version":1,"vni":100,"subnet":"10.100.0.0/16"}   written by operators
//	P/hosts/<host>/record            {"version":1,"tunnel_ip":"192.0.2.1","claims_layout":true}  leased by the host's agent
//	P/claims/<network>/<host>/<ip>   {"version":1,"mac":"02:00:00:00:00:01"}            leased by the host's agent
//
// A host writes only under P/hosts/<host>/ and P/claims/<network>/<host>/,
// so that an etcd role per host (with a grant per network) confines it
// there; two hosts claiming one IP write two keys and neither overwrites
// the other. Claims are stored network first so that one watch of
// P/claims/<network>/ carries one network's claims. The Publisher watches
// its own prefixes and undoes (and reports) any change it did not make
// (guard.go). Claims of the previous version's host layout
// (P/hosts/<host>/endpoints/<network>/<ip>) are still read; a host's
// claim in the claims layout wins over its own in the host layout. The
// previous version reads the host layout alone, and its host records lack
// claims_layout: while one of those is alive (the Source tells the
// Publisher, Config.OnHostLayoutReaders), upgraded agents write a copy of
// each claim in the host layout too, and delete the copies when none is
// left, so that a rolling upgrade keeps every host's endpoints in every
// view. Records of the
// older layout (P/hosts/<host>, P/endpoints/...) are
// ignored and reported once per host (kind "etcd-old-layout"); an agent
// removes its own at start. Conflicts are settled the same way
// on every host, from etcd's create revisions (the oldest record wins, then
// the lower host name, network name or IP): one IP in a network, one MAC in
// a network, one VNI, one tunnel IP. Networks of the local cluster file, if
// any, win over etcd records of the same name or VNI. Losers are left out
// of the view and reported once (kind "conflict"); records that do not
// parse are reported (kind "etcd-record") and ignored; an endpoint whose
// network is unknown or whose IP is outside it is reported (kind
// "endpoint"). An endpoint whose host record is missing waits for it
// silently: a host's records come and go together with its lease.
//
// The Source lists the prefix in one range read, then watches
// from the next revision, so nothing is missed in between; a watch that
// falls behind a compaction lists the prefix again. Watch responses that arrive
// together are folded into one view. While etcd is unreachable the last
// view stays in force (State().Connected is false, a log line says so)
// and the watch resumes from its last revision when etcd returns.
//
// With Config.Scoped (the agent's default) the Source lists and watches
// the hosts' and networks' records (one range: P/endpoints/ to the end of
// P/networks/; P/claims/ sorts before it), and the claims of the networks
// of interest alone (SetInterest: the networks the agent uses), one range
// read and one watch of P/claims/<network>/ each, started when the
// interest begins and cancelled when it ends, the network's claims then
// dropped from the index. Views say which networks are loaded
// (cluster.View.Loaded). Each watch resumes from its own revision; a
// watch behind a compaction lists its own range again, alone (one
// network's claims, or the hosts' and networks' records), replacing what
// the index holds of that range (scope.go).
//
// The index costs are proportional to the change, except when networks
// change (every endpoint is checked again), a host appears or vanishes
// (its claims are found by a scan) or a network's claims are dropped (a
// scan of the IPs loaded). Each published view holds a new sorted
// endpoint list, built by merging the changes into the previous one: one
// copy of the list per batch of changes.
package etcd
