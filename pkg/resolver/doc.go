// Package resolver answers the DNS queries of containers: their names
// within their own network, and every other name through the host's
// upstream resolvers, so that a container needs no other resolver.
//
// # Where queries arrive
//
// Each network a host serves has a gateway address on an OVS internal port in
// the host's namespace (the gateway every container already routes through).
// The Server opens one UDP and one TCP socket on each gateway address, port
// 53, in the agent's process (SetNetwork). A query's network is the one whose
// address it arrived at, and its source must be inside that network's subnet,
// else it is REFUSED: the pipeline's spoof guard makes the source address
// trustworthy, and the kernel delivers a packet to any local address whatever
// the interface it came in by, so a red container reaching blue's gateway
// address must be turned away here. A query from one network therefore never
// sees another network's names; within its own network a name of another one
// does not exist (NXDOMAIN).
//
// Why sockets and not answers in the datapath (packet-in, as OVN does): the
// kernel already does the part a datapath responder would have to rebuild
// (IP reassembly, UDP and TCP, checksums, ICMP errors, per-socket buffering
// and backpressure); TCP, needed for truncated answers, is out of reach of a
// packet-in responder; forwarding needs sockets to the upstreams anyway; and
// no flow has to steer port 53, so the resolver does not depend on the
// OpenFlow connection or the pipeline version. The cost: while the agent
// process is not running, its sockets are closed (see below). A packet-in
// responder has the same gap, since the agent answers packet-ins.
//
// # Agent restarts
//
// Between the old process closing its sockets and the new one opening them,
// a UDP query gets an ICMP port unreachable and a TCP connection a reset:
// the C library counts that as a failed attempt at once (retries wait only
// when the kernel rate-limits the ICMP), so a lookup in the gap fails. The
// gap is the new process's start up to SetNetwork (measured ~40-200 ms for a
// small process on a loaded machine, TestRestartGap). To have no gap at all,
// the service manager holds the sockets across the restart (systemd's file
// descriptor store: Server.Files, then Inherit in the next process): queries
// sent meanwhile wait in the socket buffer and are answered late, none is
// refused or lost (TestRestartHandoff). Stopping, each UDP reader finishes
// the query in hand; forwarded queries still waiting for an upstream get no
// answer, so that the client asks again. The sockets are opened with
// IP_FREEBIND, so the resolver can start before the gateway port has its
// address. Load the names before SetNetwork: until Table.SetSynced(true),
// unknown cluster names get SERVFAIL (never cached) rather than NXDOMAIN.
//
// # Names
//
// The Table maps, per network, names to addresses and addresses to names.
// The name sources change it one endpoint at a time (Set, Delete) at a cost
// that does not depend on its size; queries read it under a per-network read
// lock. Several endpoints with one name: every address is answered, the
// order rotating at each query. A name is one DNS label (ValidateName). It is
// answered as <name> and <name>.<network>.<domain>; the addresses of the
// network's subnet answer PTR queries with the qualified name.
//
// # What is forwarded
//
// Everything else: names outside the cluster domain with more than one label
// and reverse names outside the network's subnet go to the upstreams (from
// /etc/resolv.conf unless configured; never our own addresses), one after
// the other within a per-attempt timeout and an overall timeout, over TCP
// again when an answer is truncated, SERVFAIL when none answers. The
// queries waiting for upstreams are capped globally and per client address;
// beyond that they are dropped, as a busy resolver does. Single-label names
// that are no container's and names in the cluster domain are never
// forwarded: NXDOMAIN.
//
// # Bad input
//
// Messages shorter than a header and responses are dropped; messages that do
// not parse, or with other than one question, get FORMERR; other opcodes,
// classes and zone transfers get NOTIMP; queries over 4 KiB are dropped and
// a TCP connection carrying one is closed. Answers never exceed what the
// client can receive (512 bytes over UDP, or its EDNS size up to 1232): TC
// is set and the client asks again over TCP. Each socket is read by a fixed
// number of goroutines; forwarded queries and TCP connections are capped,
// so memory and goroutines are bounded whatever arrives. Every case is
// counted (Metrics) and logged at most once per 10 s per kind.
package resolver
