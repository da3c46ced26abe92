package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// External_ids HostEndpoints writes besides pkg/endpoint's keys: the
// owner, and Docker's ids, by which Leave finds the port after an agent
// restart (OVSDB is the only record of an endpoint). Docker tells a remote
// driver neither the container's id nor its name nor the interface name it
// will give (eth<N>, chosen after Join): container_id is the sandbox's
// namespace path (the contract allows a path), container_iface is not
// written, and ofctl-agent.name is written after Join by the Namer, which
// asks the Engine API (names.go).
const (
	OwnerDocker       = "docker" // external_ids:ofctl-agent.owner of the plugin's ports
	KeyDockerEndpoint = "ofctl-agent.docker-endpoint"
	KeyDockerNetwork  = "ofctl-agent.docker-network"
)

// PortsClient is the part of *ovsdb.Client (the agent's) HostEndpoints
// uses.
type PortsClient interface {
	AddPort(ctx context.Context, spec ovsdb.PortSpec) error
	DeletePort(ctx context.Context, name string) error
	Interfaces() []ovsdb.Interface
	WaitInstalled(ctx context.Context, iface string, ip netip.Addr) error
	DatapathType(ctx context.Context) (string, error)
}

// HostConfig wires HostEndpoints.
type HostConfig struct {
	Ports PortsClient
	// Links makes the veth pairs in dockerd's network namespace (also the
	// namespace of ovs-vswitchd, which opens the host end).
	Links Links
	// Network is the agent's local API's answer for a network on this
	// host: its MTU (and gateway) for the container's interface.
	Network func(name string) (agentapi.Network, error)
	// Ready, if set, says why the agent cannot install an endpoint now
	// (its pipeline is not in OVS: ovs-vswitchd down or restarting); Join
	// then fails at once, before it makes anything.
	Ready func() error
	// OnJoined, if set, is told of every endpoint Join made (the Namer
	// looks its container's name up); it must return at once.
	OnJoined func(ep Endpoint)
	Logger   *slog.Logger
}

// Links is the kernel side of HostEndpoints: veth pairs in dockerd's
// network namespace. NetlinkLinks implements it.
type Links interface {
	// AddVeth creates the pair host/peer with mtu on both ends and mac on
	// peer; the container end's TX checksum offload is turned off when
	// txOff (OVS's userspace datapath does not finish checksums).
	AddVeth(host, peer string, mac []byte, mtu int, txOff bool) error
	// SetUp sets an interface up.
	SetUp(name string) error
	// DeleteVeth deletes a veth (and so its peer); an absent one is not an
	// error.
	DeleteVeth(name string) error
	// Exists says whether an interface of that name is there.
	Exists(name string) (bool, error)
}

// HostEndpoints implements Endpoints on the agent's host: a veth pair in
// dockerd's namespace, its host end an OVS port of the integration bridge
// with the endpoint's external_ids, Join done once the agent's installed
// mark is set. It keeps no state: the port names derive from Docker's
// endpoint id, and the ports carry everything else.
type HostEndpoints struct {
	cfg HostConfig
}

// NewHostEndpoints returns Endpoints plumbing with cfg.
func NewHostEndpoints(cfg HostConfig) (*HostEndpoints, error) {
	if cfg.Ports == nil || cfg.Links == nil || cfg.Network == nil {
		return nil, errors.New("docker plugin: host endpoints need Ports, Links and Network")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &HostEndpoints{cfg: cfg}, nil
}

// VethNames are the names of an endpoint's veth: host is the OVS port (it
// stays in dockerd's namespace), peer the end Docker moves into the
// container and renames eth<N>. 12 hex digits of the endpoint id keep them
// unique and within the kernel's 15 characters.
func VethNames(endpointID string) (host, peer string) {
	id := endpointID
	if len(id) > 12 {
		id = id[:12]
	}
	return "dkh" + id, "dkc" + id
}

// rollbackTimeout bounds undoing a failed Join, which runs even when
// Join's context is done.
const rollbackTimeout = 10 * time.Second

// Join implements Endpoints.
func (h *HostEndpoints) Join(ctx context.Context, ep Endpoint) (_ Joined, err error) {
	host, peer := VethNames(ep.ID)
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(); err != nil {
			return Joined{}, fmt.Errorf("the agent cannot install endpoints now: %w", err)
		}
	}
	n, err := h.cfg.Network(ep.Network)
	if err != nil {
		return Joined{}, fmt.Errorf("network %s on this host: %w", ep.Network, err)
	}
	ports, err := publishedPorts(ep.Ports)
	if err != nil {
		return Joined{}, invalid("%v", err)
	}
	dp, err := h.cfg.Ports.DatapathType(ctx)
	if err != nil {
		return Joined{}, fmt.Errorf("datapath type of the bridge: %w", err)
	}
	// A Join for an endpoint whose pair is still there (a Join that failed
	// half-way in an agent that was killed) starts over.
	if err := h.remove(ctx, ep.ID); err != nil {
		return Joined{}, err
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			if rerr := h.remove(rctx, ep.ID); rerr != nil {
				err = fmt.Errorf("%w; undoing it failed: %v", err, rerr)
			}
		}
	}()
	if err := h.cfg.Links.AddVeth(host, peer, ep.MAC, n.MTU, dp == "netdev"); err != nil {
		return Joined{}, err
	}
	if err := h.cfg.Links.SetUp(host); err != nil {
		return Joined{}, err
	}
	ids := map[string]string{
		endpoint.KeyNetwork:     ep.Network,
		endpoint.KeyIP:          ep.Address.Addr().String(),
		endpoint.KeyMAC:         ep.MAC.String(),
		endpoint.KeyOwner:       OwnerDocker,
		endpoint.KeyContainerID: ep.SandboxKey,
		KeyDockerEndpoint:       ep.ID,
		KeyDockerNetwork:        ep.NetworkID,
	}
	if len(ports) > 0 {
		ids[endpoint.KeyPorts] = endpoint.FormatPorts(ports)
	}
	if err := h.cfg.Ports.AddPort(ctx, ovsdb.PortSpec{Name: host, ExternalIDs: ids}); err != nil {
		return Joined{}, fmt.Errorf("add OVS port %s: %w", host, err)
	}
	if err := h.cfg.Ports.WaitInstalled(ctx, host, ep.Address.Addr()); err != nil {
		var refused *ovsdb.RefusedError
		if errors.As(err, &refused) {
			return Joined{}, fmt.Errorf("the agent refuses the endpoint: %s", refused.Reason)
		}
		if ctx.Err() != nil {
			return Joined{}, fmt.Errorf("port %s: the agent did not install its flows in time (is ovs-vswitchd running? the agent's log and /readyz say why): %w", host, err)
		}
		return Joined{}, fmt.Errorf("port %s: %w", host, err)
	}
	h.cfg.Logger.Info("docker endpoint joined", "endpoint", ep.ID, "network", ep.Network, "ip", ep.Address.Addr(),
		"mac", ep.MAC.String(), "port", host, "sandbox", ep.SandboxKey)
	if h.cfg.OnJoined != nil {
		h.cfg.OnJoined(ep)
	}
	return Joined{Interface: peer}, nil
}

// Leave implements Endpoints: the OVS port and the veth go.
func (h *HostEndpoints) Leave(ctx context.Context, endpointID string) error {
	return h.remove(ctx, endpointID)
}

func (h *HostEndpoints) remove(ctx context.Context, endpointID string) error {
	host, _ := VethNames(endpointID)
	var errs []error
	if err := h.cfg.Ports.DeletePort(ctx, host); err != nil {
		errs = append(errs, fmt.Errorf("delete OVS port %s: %w", host, err))
	}
	if err := h.cfg.Links.DeleteVeth(host); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Sweep removes the plugin's ports whose endpoint is dead: OVS cannot
// open the interface (ofport -1) and no interface of that name is in
// dockerd's namespace. Docker removes its endpoints itself when a
// container ends or dockerd restarts; a port left over (a host that
// rebooted with a Docker whose state was wiped, a Leave that never came)
// would hold its address for good. It returns the ports removed.
func (h *HostEndpoints) Sweep(ctx context.Context) ([]string, error) {
	var removed []string
	var errs []error
	for _, i := range h.cfg.Ports.Interfaces() {
		if i.ExternalIDs[endpoint.KeyOwner] != OwnerDocker || i.OFPort != -1 {
			continue
		}
		switch there, err := h.cfg.Links.Exists(i.Name); {
		case err != nil:
			errs = append(errs, err)
			continue
		case there:
			continue
		}
		if err := h.cfg.Ports.DeletePort(ctx, i.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete dead OVS port %s: %w", i.Name, err))
			continue
		}
		h.cfg.Logger.Info("removed the port of a dead docker endpoint", "port", i.Name, "ip", i.ExternalIDs[endpoint.KeyIP],
			"endpoint", i.ExternalIDs[KeyDockerEndpoint], "ovs_error", i.Error)
		removed = append(removed, i.Name)
	}
	return removed, errors.Join(errs...)
}

// Publish implements Endpoints: the port's ofctl-agent.ports become ports
// (the agent's published ports wire them).
func (h *HostEndpoints) Publish(ctx context.Context, endpointID string, ports []PortMapping) error {
	pub, err := publishedPorts(ports)
	if err != nil {
		return invalid("%v", err)
	}
	return h.setPorts(ctx, endpointID, endpoint.FormatPorts(pub))
}

// Unpublish implements Endpoints.
func (h *HostEndpoints) Unpublish(ctx context.Context, endpointID string) error {
	return h.setPorts(ctx, endpointID, "")
}

// setPorts rewrites the endpoint port's ofctl-agent.ports ("" removes it);
// an endpoint without a port (gone already) is not an error.
func (h *HostEndpoints) setPorts(ctx context.Context, endpointID, ports string) error {
	host, _ := VethNames(endpointID)
	for _, i := range h.cfg.Ports.Interfaces() {
		if i.Name != host || i.ExternalIDs[KeyDockerEndpoint] != endpointID {
			continue
		}
		if i.ExternalIDs[endpoint.KeyPorts] == ports {
			return nil
		}
		ids := maps.Clone(i.ExternalIDs)
		delete(ids, endpoint.KeyPorts)
		if ports != "" {
			ids[endpoint.KeyPorts] = ports
		}
		if err := h.cfg.Ports.AddPort(ctx, ovsdb.PortSpec{Name: host, ExternalIDs: ids}); err != nil {
			return fmt.Errorf("port %s: published ports: %w", host, err)
		}
		return nil
	}
	return nil
}

// publishedPorts turns Docker's port map into the endpoint contract's
// published ports: tcp and udp, on every host address.
func publishedPorts(ps []PortMapping) ([]endpoint.Published, error) {
	out := make([]endpoint.Published, 0, len(ps))
	for _, p := range ps {
		proto := endpoint.Proto(p.Proto)
		if proto != endpoint.TCP && proto != endpoint.UDP {
			return nil, fmt.Errorf("-p %s: only tcp and udp ports can be published", p)
		}
		if p.HostIP.IsValid() {
			return nil, fmt.Errorf("-p %s: a host address cannot be given (ports are published on every address of the host)", p)
		}
		out = append(out, endpoint.Published{Proto: proto, HostPort: p.HostPort, Port: p.ContainerPort})
	}
	return out, nil
}
