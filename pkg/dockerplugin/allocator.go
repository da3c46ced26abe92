package dockerplugin

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
)

// HostAddresses is Addresses on the host's one allocator (pkg/ipam, the
// agent's: agent.Agent.Addresses), for the plugin served in the agent's
// process:
//
//	dockerplugin.Config{Addresses: dockerplugin.NewHostAddresses(ag.Addresses()), ...}
//
// Docker names no owner in its address calls: each Reserve is an owner of
// its own ("docker:<n>") until CreateEndpoint names the endpoint (Own:
// "docker:<endpoint id>"), and Release gives the address back whoever
// holds it. A reserved address is held until Join's port claims it (then until
// the port goes), until Release, or for ipam.DefaultTTL without a port.
type HostAddresses struct {
	a   *ipam.Allocator
	seq atomic.Uint64
}

// NewHostAddresses returns Addresses on allocator a.
func NewHostAddresses(a *ipam.Allocator) *HostAddresses { return &HostAddresses{a: a} }

// Gateway implements Addresses: this host's gateway in network, the zero
// Addr while the host has none.
func (h *HostAddresses) Gateway(network string) (netip.Addr, error) {
	_, gw, err := h.a.Network(network)
	return gw, err
}

// Reserve implements Addresses; the allocator's ErrAddressTaken and
// ErrExhausted become ErrAddressUnavailable and ErrExhausted.
func (h *HostAddresses) Reserve(network string, addr netip.Addr) (netip.Addr, error) {
	l, err := h.a.Allocate(network, "docker:"+strconv.FormatUint(h.seq.Add(1), 10), addr)
	switch {
	case errors.Is(err, agentapi.ErrAddressTaken):
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrAddressUnavailable, err)
	case errors.Is(err, agentapi.ErrExhausted):
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrExhausted, err)
	case err != nil:
		return netip.Addr{}, err
	}
	return l.Address.Addr(), nil
}

// Own implements Addresses: the allocation's owner becomes
// "docker:<endpoint id>".
func (h *HostAddresses) Own(network string, addr netip.Addr, endpointID string) {
	h.a.Reown(network, addr, "docker:"+endpointID)
}

// Release implements Addresses.
func (h *HostAddresses) Release(network string, addr netip.Addr) error {
	h.a.ReleaseAddress(network, addr)
	return nil
}
