// Package pipeline turns the desired state of a host (networks, local
// endpoints, remote hosts and endpoints, the tunnel port) into the
// deterministic set of OpenFlow 1.3 flows of its integration bridge. It is
// pure: Build and the per-object functions (FixedFlows, NetworkFlows,
// EndpointFlows, RemoteHostFlows, RemoteEndpointFlows) only compute values.
// docs/pipeline.md describes the tables, registers and cookies.
//
// For incremental updates, each per-object function depends only on its
// arguments: EndpointFlows on the endpoint and its network, RemoteHostFlows
// on the host and the networks (its ranges), RemoteEndpointFlows on the
// endpoint, its network and host, NetworkFlows on the network, FixedFlows on
// the tunnel port. All flows of one object share its cookie, but for the
// role field that singles out flows read on their own (see Cookie, Role).
// Build leaves out network and remote flows while there is no tunnel port.
//
// How to add a table:
//
//  1. Add a constant to the Table list in tables.go at the place packets
//     reach it (goto_table only goes forward; later tables get new IDs,
//     which the agent's diff turns into a resync of those tables).
//  2. Give it a name and a one-line description in Tables().
//  3. Write its flows in a function returning []flow.Flow with the cookie of
//     the object they belong to, add its miss flow in FixedFlows, and goto it
//     from the table before it. Name any new register bits next to the
//     existing ones, never reusing bits.
//  4. Run `go test ./pkg/pipeline -update` and review the golden diff; add
//     the table to docs/pipeline.md (a test checks every table is there).
package pipeline
