package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// decodeEndpoint decodes a request that names an endpoint and checks the
// ids.
func (c *call) decodeEndpoint(req interface{ ref() endpointRef }) error {
	if err := c.decode(req); err != nil {
		return err
	}
	r := req.ref()
	if err := checkID("NetworkID", r.NetworkID); err != nil {
		return err
	}
	if err := checkID("EndpointID", r.EndpointID); err != nil {
		return err
	}
	c.log("docker_network", r.NetworkID, "endpoint", r.EndpointID)
	return nil
}

// boundNetwork returns the binding of a Docker network id.
func (s *Server) boundNetwork(id string) (Network, error) {
	n, ok := s.st.network(id)
	if !ok {
		return n, invalid("unknown network %s: it was not created through ofctl-agent on this host (or its binding was lost: re-create the network)", id)
	}
	return n, nil
}

func (s *Server) createEndpoint(c *call) (any, error) {
	var req createEndpointRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	n, err := s.boundNetwork(req.NetworkID)
	if err != nil {
		return nil, err
	}
	c.log("network", n.Name)
	ep, derived, err := endpointFrom(req, n)
	if err != nil {
		return nil, err
	}
	if extra := unknownKeys(req.Options, knownEndpointOptions); len(extra) > 0 {
		s.cfg.Logger.Debug("docker endpoint options not used", "endpoint", ep.ID, "keys", extra)
	}
	s.st.putEndpoint(ep)
	s.cfg.Addresses.Own(n.Name, ep.Address.Addr(), ep.ID)
	if !derived {
		return struct{}{}, nil
	}
	// Docker left the MAC to the driver: the derived one, which hosts of
	// a static cluster view expect for this address.
	return createEndpointResponse{Interface: &endpointInterface{MacAddress: ep.MAC.String()}}, nil
}

// endpointFrom checks CreateEndpoint's interface against the network and
// builds the endpoint. derived says the MAC was not given and is derived
// from the address (pkg/arp.DerivedMAC).
func endpointFrom(req createEndpointRequest, n Network) (ep Endpoint, derived bool, err error) {
	ep = Endpoint{ID: req.EndpointID, NetworkID: req.NetworkID, Network: n.Name}
	itf := req.Interface
	if itf == nil || itf.Address == "" {
		return ep, false, invalid("endpoint without an IPv4 address: the network must use --ipam-driver ofctl-agent")
	}
	if itf.AddressIPv6 != "" {
		return ep, false, invalid("endpoint with an IPv6 address %s: ofctl-agent networks are IPv4 only", itf.AddressIPv6)
	}
	addr, err := netip.ParsePrefix(itf.Address)
	if err != nil || !addr.Addr().Is4() || !n.Subnet.Contains(addr.Addr()) || addr.Bits() != n.Subnet.Bits() {
		return ep, false, invalid("endpoint address %q is not an address of network %s (%s)", itf.Address, n.Name, n.Subnet)
	}
	ep.Address = addr
	opts, err := parseEndpointOptions(req.Options)
	if err != nil {
		return ep, false, invalid("%v", err)
	}
	ep.Ports, ep.Exposed = opts.Ports, opts.Exposed
	if _, err := publishedPorts(ep.Ports); err != nil {
		return ep, false, invalid("%v", err)
	}
	switch {
	case itf.MacAddress != "":
		if ep.MAC, err = parseMAC(itf.MacAddress); err != nil {
			return ep, false, invalid("%v", err)
		}
		if opts.MAC != nil && !slices.Equal(opts.MAC, ep.MAC) {
			return ep, false, invalid("MAC address %s in the interface and %s in the options differ", ep.MAC, opts.MAC)
		}
	case opts.MAC != nil:
		ep.MAC = opts.MAC
	default:
		ep.MAC, derived = arp.DerivedMAC(addr.Addr()), true
	}
	return ep, derived, nil
}

func (s *Server) join(c *call) (any, error) {
	var req joinRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	if req.SandboxKey == "" {
		return nil, invalid("SandboxKey missing")
	}
	if _, err := parseEndpointOptions(req.Options); err != nil {
		return nil, invalid("%v", err)
	}
	n, err := s.boundNetwork(req.NetworkID)
	if err != nil {
		return nil, err
	}
	ep, ok := s.st.endpoint(req.EndpointID)
	if !ok || ep.NetworkID != req.NetworkID {
		return nil, invalid("unknown endpoint %s in network %s: its CreateEndpoint was not seen (did the agent restart in between? start the container again)", req.EndpointID, req.NetworkID)
	}
	c.log("network", n.Name, "ip", ep.Address.Addr())
	ep.SandboxKey = req.SandboxKey
	resp := joinResponse{DisableGatewayService: true} // never docker_gwbridge: the gateway is ours
	if !n.Internal {
		gw, err := s.cfg.Addresses.Gateway(n.Name)
		if err != nil {
			return nil, fmt.Errorf("gateway of network %s: %w", n.Name, err)
		}
		if gw.IsValid() { // else no default route (and no docker_gwbridge either)
			resp.Gateway = gw.String()
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, s.cfg.JoinTimeout)
	defer cancel()
	joined, err := s.cfg.Endpoints.Join(ctx, ep)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("endpoint %s (%s) not installed within %v: %w", ep.ID, ep.Address.Addr(), s.cfg.JoinTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint %s (%s): %w", ep.ID, ep.Address.Addr(), err)
	}
	if joined.Interface == "" || len(joined.Interface) > 15 {
		return nil, fmt.Errorf("endpoint %s: backend returned interface name %q", ep.ID, joined.Interface)
	}
	s.st.putEndpoint(ep)
	resp.InterfaceName = interfaceName{SrcName: joined.Interface, DstPrefix: "eth"}
	return resp, nil
}

func (s *Server) leave(c *call) (any, error) {
	var req endpointRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	return struct{}{}, s.cfg.Endpoints.Leave(c.ctx, req.EndpointID)
}

// deleteEndpoint also asks the backend to remove the endpoint's plumbing:
// Docker sends DeleteEndpoint without Leave when Join failed, and a Leave
// that failed (agent down) is not sent again.
func (s *Server) deleteEndpoint(c *call) (any, error) {
	var req endpointRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	if _, ok := s.st.endpoint(req.EndpointID); !ok {
		c.ignore("unknown endpoint")
	}
	if err := s.cfg.Endpoints.Leave(c.ctx, req.EndpointID); err != nil {
		return nil, err
	}
	s.st.deleteEndpoint(req.EndpointID)
	return struct{}{}, nil
}

// endpointOperInfo answers docker inspect's question about an endpoint.
// An unknown one (after an agent restart) gets an empty answer: an error
// would fail docker inspect.
func (s *Server) endpointOperInfo(c *call) (any, error) {
	var req endpointRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	ep, ok := s.st.endpoint(req.EndpointID)
	if !ok {
		c.ignore("unknown endpoint")
		return operInfoResponse{Value: map[string]string{}}, nil
	}
	return operInfoResponse{Value: map[string]string{
		endpoint.KeyNetwork: ep.Network,
		endpoint.KeyIP:      ep.Address.Addr().String(),
		endpoint.KeyMAC:     ep.MAC.String(),
	}}, nil
}

func (s *Server) programExternal(c *call) (any, error) {
	var req externalRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	opts, err := parseEndpointOptions(req.Options)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if len(opts.Ports) == 0 {
		return struct{}{}, nil
	}
	return struct{}{}, s.cfg.Endpoints.Publish(c.ctx, req.EndpointID, opts.Ports)
}

func (s *Server) revokeExternal(c *call) (any, error) {
	var req endpointRequest
	if err := c.decodeEndpoint(&req); err != nil {
		return nil, err
	}
	return struct{}{}, s.cfg.Endpoints.Unpublish(c.ctx, req.EndpointID)
}
