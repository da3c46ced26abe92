// Package ipam is this host's one address allocator: attach, the CNI plugin
// and the Docker plugin all take container addresses from it (through the
// agent's local API, pkg/agentapi, or in the agent's process), so that two
// of them never hand out one address.
//
// # The share
//
// A host hands out addresses of its share of each network:
//
//   - static mode (this host has a range in the network in the cluster
//     view): the addresses of its range, lowest free first, so that a
//     container stopped and started again gets its address back when
//     nothing took it meanwhile. The range's first and last addresses are
//     never picked (to people who read a /24 range as a subnet they look
//     like its network and broadcast addresses), but may be asked for.
//   - claims mode (no host has a range in the network: the etcd backend,
//     whose hosts publish no ranges): the whole subnet minus the addresses
//     other hosts claim in the current view. The search starts at an
//     offset derived from the node name (FNV-1a), so that two hosts rarely
//     pick the same free address at the same moment; etcd's claim rule
//     settles the rare tie (docs/etcd.md).
//
// Never handed out: the subnet's network and broadcast addresses (subnets
// up to /30), this host's gateway address in the network, an address in
// another host's range, an address another host claims, and every address
// a holder has. An address asked for (attach --ip, docker run --ip) may
// also be one in no host's range in static mode: the agent programs such
// an endpoint, and only this host reaches it (README, Concepts).
//
// # Holders
//
// An address is held by
//
//   - a port on the bridge whose external_ids claim it (ofctl-agent.network
//     and ofctl-agent.ip, valid or not as an endpoint): OVSDB is the
//     authority, and it survives restarts of the agent;
//   - an allocation: an owner ("attach:<container>/<ifname>",
//     "cni:<container>/<ifname>", "docker:<n>" until Docker's CreateEndpoint
//     names it "docker:<endpoint id>" with Reown) holds the address from
//     Allocate until a port claiming it appears (the port holds it from
//     then on, and removing the port frees it), until it is released, or
//     until TTL (DefaultTTL, 2 minutes) passes without a port. The same
//     owner asking again gets the same address, so a client that retries
//     never takes two; an owner holds at most one address per network
//     (asking for another moves it).
//
// Allocations lists them with their owners and ReleaseOwner ends one by
// owner alone: whoever cleans up after a client killed between Allocate
// and its port (the CNI plugin's DEL and GC) frees the address at once,
// without knowing it; the TTL is the last resort. Stats counts, per
// network, the addresses held by ports and by allocations still waiting
// for theirs, and the allocations the TTL ended (the agent's metrics).
//
// Allocations live in the agent's memory only. After an agent restart a
// client that was given an address just before, and adds its port only
// after, races with any other allocation of that address: the port rule
// settles it (pkg/endpoint: the first port keeps the address, the agent
// writes external_ids:ofctl-agent.error on the second, and the second's
// client, waiting for the installed signal, fails or retries). attach
// fails and undoes what it made.
//
// # Concurrency
//
// One mutex serialises every call: the agent is the only process that
// allocates, so no address is handed out twice by construction. The agent
// feeds the allocator from its loop (SetPort, DeletePort, SetView) and must
// pass every port of the bridge before the first SetView: until then
// Allocate answers ErrNotReady.
package ipam
