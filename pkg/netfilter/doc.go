// Package netfilter keeps the host's packet filter for the gateways: one
// nftables table of the agent's own (family ip, "ofctl-agent"), its accept
// rules in Docker's DOCKER-USER chain, and the IPv4 forwarding flags the
// gateways need, equal to a desired State, the way the agent keeps flows.
//
// Data flows one way: State -> Build (pure: rules and refusals) -> plan
// (pure: compare with what the kernel holds) -> one nftables batch (a
// transaction: all or nothing, packets never see half of it). Only what
// differs is changed: an agent restart with the same State changes nothing
// (established connections, conntrack and counters stay).
//
// # Wiring (for the gateway)
//
// The gateway ports (OVS internal ports in the host namespace, carrying the
// gateway address with the network's prefix) are made elsewhere; this
// package only needs their names:
//
//	k, err := netfilter.New(netfilter.Options{Logger: log})
//	go k.Run(ctx)                  // repairs out-of-band changes until ctx ends
//	refused, err := k.Apply(netfilter.State{
//		Networks:  []netfilter.Network{{Name: "blue", Subnet: subnet, Gateway: "ofgw-blue"}}, // Routed: nat: false
//		Publishes: publishes,        // from the endpoints' published ports, oldest endpoint first
//		Blocked:   underlayAddrs,    // every host's tunnel address (/32), by default
//		Allowed:   operatorAllowList,
//		Underlay:  underlayNets,     // refuse a NAT network overlapping them
//	})
//
// Apply is called at start and again whenever networks, gateway ports,
// published ports or hosts change; it applies the whole State and
// returns at once. Each refused item is a *Refusal (errors.Is ErrInvalid or
// ErrConflict; Kind "network", "publish", "address", "uplink"), returned
// by the Apply that first sees it: log it and count it
// (ofctl_agent_invalid_inputs_total{kind}); every other item is built as
// if it were absent. err reports a kernel failure; Run retries every
// second. Register metrics.NewNATCollector(k) for /metrics. `ofctl-agent
// cleanup` calls Cleanup (after Run has stopped): it removes the table and
// the DOCKER-USER rules in one batch.
//
// # The rules (testdata/reference.golden has them all, as nft lists them)
//
//   - Outbound NAT: a packet from a network's subnet leaving by any
//     interface but a gateway port is masqueraded to the address of the
//     interface it leaves by (chain postrouting), unless the network is
//     Routed. Container-to-container traffic never reaches the host's IP
//     stack (OVS switches it, through GRE across hosts) and what goes out
//     a gateway port is never masqueraded, with one exception: a
//     container reaching a published port of its own network through the
//     host (hairpin) is masqueraded to the gateway address, so that the
//     reply comes back through the host.
//   - Published ports: a connection to one of the host's addresses
//     (`fib daddr type local`) on a published protocol and port is DNATed
//     to the container, whether it comes from outside (prerouting), from
//     the host itself (output; not to 127.0.0.0/8, which would need
//     route_localnet) or from a container of any network. A second
//     endpoint asking for a taken host port is refused (ErrConflict); the
//     holder keeps it, across restarts too (the kernel's rules say who
//     holds it before the first Apply).
//   - Isolation through the host (chains to-<net> and from-<net>, entered
//     from forward by the gateway port's name): towards a network, only
//     replies (ct state established,related) and published ports pass; a
//     new connection from outside or from another network is dropped
//     ("unsolicited"). From a network: a source outside its subnet is
//     dropped ("spoofed"), addresses in set blocked (Blocked minus Allowed)
//     are dropped ("blocked"), anything else goes out ("outside").
//   - Allowed by default, and why: the outside world (containers must
//     fetch packages and reach services); the host itself on any of its
//     addresses not in Blocked (the gateway address will serve DNS; the
//     underlay addresses, in Blocked, keep etcd and the management plane
//     out of reach); published ports on any network (they are public
//     services of the host, reachable from outside anyway); replies of a
//     published port to a Blocked address (the connection came in through
//     the published port). The host itself reaches its containers (its
//     own traffic is not forwarded, nothing filters it).
//
// # Forwarding
//
// The kernel decides IPv4 forwarding by the flag of the interface a packet
// comes in by (net.ipv4.conf.<in>.forwarding), not the global one, which
// only sets every interface's flag when written (checked by the tests:
// with all=0, the gateway's and the uplink's flags are what matter). The
// Keeper writes 1, through /proc/sys, for the gateway ports (containers'
// traffic out) and the uplinks (replies and published ports in):
// State.Uplinks, or the interfaces of the default routes when empty. It
// never writes 0 (other programs may rely on forwarding) and Cleanup
// leaves the flags. A gateway port not there yet is reported in
// Status.ForwardingMissing and done within a second of its appearance.
// Forwarding on an uplink lets neighbours route through the host to its
// other interfaces, as ip_forward=1 does; towards the containers the
// rules above decide.
//
// # Docker
//
// Where dockerd runs (iptables-nft, Debian's default) it sets the FORWARD
// policy of table ip filter to DROP, and a drop in any table's hook drops
// the packet: the gateways' forwarded traffic would die there whatever
// this table says. The one exception to "the agent touches only its
// table": when chain DOCKER-USER exists in table ip filter (Docker's chain
// for its users' rules, jumped to first from FORWARD), the Keeper keeps at
// its top one accept rule per direction and gateway port
// (`iifname "ofgw-blue" counter accept comment "ofctl-agent: from
// gateway blue"`), in expressions iptables-nft reads back (`iptables -L
// DOCKER-USER -v` and iptables-save show them, with their comments), and
// no other rule of its own there. The agent's table still judges that
// traffic (its drops apply). Nothing cleaner passes a DROP policy in
// another table: an accept only ends its own chain. Traffic between the
// gateways and Docker's bridges is then judged by this table alone (it
// leaves by a non-gateway interface: masqueraded); put Docker's subnets in
// Blocked to keep the containers apart. Not handled: iptables-legacy (x_tables, out of nftables' reach) and
// other firewalls' nftables tables with a drop policy (firewalld, ufw on
// nft): they must let the gateway ports through.
//
// # Repair
//
// Run subscribes to the kernel's nftables events: a transaction of another
// process touching the agent's table, table ip filter, or any set's
// elements (their events carry no table) starts a comparison at once,
// and whatever differs is changed back (measured: 5-31 ms from the change
// to the repair, nft monitor as the observer). A table deleted, a chain or
// set of the wrong kind, is made again in one batch. The Keeper's own
// transactions are recognised by their thread and ignored. Everything is
// also compared every Options.ResyncPeriod (10 s; forwarding flags have no
// events), every second after a failure, and when the monitor restarts.
//
// # Counters
//
// Counters reads the rules' counters (a few netlink dumps, for every
// scrape): per network the connections masqueraded (the NAT rule sees
// first packets only), the packets and bytes forwarded to and from the
// outside, and drops by reason; per published port the connections DNATed
// and the packets and bytes of those connections both ways (chain
// count-published, entered by DNATed packets from forward, input and
// output: each packet passes one of them; host ports of one container port
// share these).
//
// # Limits
//
// A published port is one rule in chain published and two in
// count-published, walked in order: fine for hundreds; thousands would
// want verdict maps. Only IPv4.
package netfilter
