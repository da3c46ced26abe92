package dockerplugin

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Addresses is this host's share of the cluster networks' addresses: the
// one allocator that attach, the CNI plugin and this plugin share, so that
// none of them hands out an address another holds. Calls must be safe for
// concurrent use, survive restarts (of the agent and of dockerd) without
// handing an address out twice, and never leave a half-made reservation.
type Addresses interface {
	// Gateway is this host's gateway address in network (the address of
	// its gateway port, which containers use as their default route); the
	// zero Addr when the host has none (containers then get no default
	// route).
	Gateway(network string) (netip.Addr, error)
	// Reserve takes addr, or the address the allocator picks when addr is
	// the zero Addr, from this host's share of network. An address outside
	// the share or already held is an error wrapping ErrAddressUnavailable;
	// a full share one wrapping ErrExhausted.
	Reserve(network string, addr netip.Addr) (netip.Addr, error)
	// Release gives addr back. Releasing an address not held is not an
	// error (Docker retries releases).
	Release(network string, addr netip.Addr) error
	// Own names the endpoint a reserved addr is for (Docker's IPAM call
	// names none; CreateEndpoint does), so that the allocator's list says
	// whose it is. Best effort: an address not reserved here is left alone.
	Own(network string, addr netip.Addr, endpointID string)
}

// Errors an Addresses implementation wraps, for errors.Is.
var (
	ErrAddressUnavailable = errors.New("address not available")
	ErrExhausted          = errors.New("no free address")
)

// Endpoints plumbs Docker endpoints into the integration bridge.
type Endpoints interface {
	// Join makes the endpoint's interface: a veth pair in dockerd's network
	// namespace (Docker moves the returned end into the container and
	// names it eth<N>), with ep.MAC and the network's MTU on that end, the
	// other end an OVS port whose external_ids describe the endpoint
	// (pkg/endpoint keys plus Docker's endpoint and network ids). It
	// returns once the port's flows are installed (the per-port installed
	// signal), or fails when ctx ends first; a failed Join leaves nothing
	// behind.
	Join(ctx context.Context, ep Endpoint) (Joined, error)
	// Leave removes what Join made for the endpoint with this Docker
	// endpoint id. Unknown ids are not an error: Docker calls Leave again
	// after failures, and after an agent restart only OVSDB still knows the
	// endpoint.
	Leave(ctx context.Context, endpointID string) error
	// Publish makes the endpoint's published ports answer on the host
	// (replacing any it had); Unpublish removes them. Docker calls them
	// only for the endpoint that gives the container its default route.
	Publish(ctx context.Context, endpointID string, ports []PortMapping) error
	Unpublish(ctx context.Context, endpointID string) error
}

// Endpoint is a Docker endpoint on a cluster network.
type Endpoint struct {
	ID         string       // Docker's endpoint id
	NetworkID  string       // Docker's network id
	Network    string       // the cluster view's network name
	Address    netip.Prefix // the container's address, with the subnet's length
	MAC        net.HardwareAddr
	Ports      []PortMapping // -p, as CreateEndpoint gave them
	Exposed    []ExposedPort
	SandboxKey string // the container's network namespace, as dockerd names it (set by Join)
}

// Joined is what Join made.
type Joined struct {
	// Interface is the name of the veth end in dockerd's namespace that
	// Docker moves into the container.
	Interface string
}
