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
// Tables are declared once, in packet order, in tables.go (name, purpose,
// miss policy); IDs are positions. Register fields and the marks they carry
// are named next to them. docs/pipeline.md, "Adding a table", walks through
// adding one.
package pipeline
