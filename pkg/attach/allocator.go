package attach

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
)

// Allocator holds the address of a new interface: the host's one allocator
// (pkg/ipam), which the agent serves (AgentAllocator), so that attach, the
// CNI plugin and the Docker plugin never hand out one address twice.
type Allocator interface {
	// Allocate holds r.IP when it is valid, else an address it picks, in
	// r.Network for the interface r describes, and returns it with the
	// network's prefix length. Asking again for the same interface gives
	// the same address.
	Allocate(ctx context.Context, r AllocRequest) (netip.Prefix, error)
	// Release gives back what Allocate gave for r; releasing what is not
	// held is not an error.
	Release(ctx context.Context, r AllocRequest, ip netip.Addr) error
}

// AllocRequest names the interface an address is for.
type AllocRequest struct {
	Network     string
	ContainerID string
	IfName      string
	IP          netip.Prefix // the address wanted; invalid: any
}

// AgentAllocator is Allocator on the agent's local API. The allocation's
// owner is "<Kind>:<container id>/<ifname>" (Owner): the same interface
// asking again (a retry) gets the same address.
type AgentAllocator struct {
	Client *agentapi.Client
	Kind   string // "attach", "cni"
}

// Owner is the allocation owner of an interface of a container.
func Owner(kind, containerID, ifname string) string { return kind + ":" + containerID + "/" + ifname }

// Allocate implements Allocator; the agent's errors (agentapi.ErrAddressTaken,
// ErrExhausted, ErrUnknownNetwork, ErrUnreachable...) are wrapped.
func (a *AgentAllocator) Allocate(ctx context.Context, r AllocRequest) (netip.Prefix, error) {
	got, err := a.Client.Allocate(ctx, agentapi.AllocateRequest{Network: r.Network, IP: r.IP.Addr(),
		Owner: Owner(a.Kind, r.ContainerID, r.IfName)})
	if err != nil {
		return netip.Prefix{}, err
	}
	if r.IP.IsValid() && got.Address.Addr() != r.IP.Addr() {
		return netip.Prefix{}, fmt.Errorf("the agent allocated %s, not the %s asked for", got.Address, r.IP.Addr())
	}
	return got.Address, nil
}

// Release implements Allocator. An invalid ip releases whatever the
// interface's owner holds in the network (its ADD or attach died before it
// learnt the address).
func (a *AgentAllocator) Release(ctx context.Context, r AllocRequest, ip netip.Addr) error {
	return a.Client.Release(ctx, agentapi.ReleaseRequest{Network: r.Network, IP: ip, Owner: Owner(a.Kind, r.ContainerID, r.IfName)})
}
