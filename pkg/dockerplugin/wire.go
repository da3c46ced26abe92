package dockerplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The calls Docker sends, by URL path. Each has a request and a response
// type below; field names are the wire's (Docker's libnetwork remote
// driver and IPAM APIs, as dockerd 20.10 sends them).
const (
	callActivate         = "Plugin.Activate"
	callNetCapabilities  = "NetworkDriver.GetCapabilities"
	callCreateNetwork    = "NetworkDriver.CreateNetwork"
	callDeleteNetwork    = "NetworkDriver.DeleteNetwork"
	callAllocateNetwork  = "NetworkDriver.AllocateNetwork"
	callFreeNetwork      = "NetworkDriver.FreeNetwork"
	callCreateEndpoint   = "NetworkDriver.CreateEndpoint"
	callDeleteEndpoint   = "NetworkDriver.DeleteEndpoint"
	callEndpointOperInfo = "NetworkDriver.EndpointOperInfo"
	callJoin             = "NetworkDriver.Join"
	callLeave            = "NetworkDriver.Leave"
	callDiscoverNew      = "NetworkDriver.DiscoverNew"
	callDiscoverDelete   = "NetworkDriver.DiscoverDelete"
	callProgramExternal  = "NetworkDriver.ProgramExternalConnectivity"
	callRevokeExternal   = "NetworkDriver.RevokeExternalConnectivity"
	callIpamCapabilities = "IpamDriver.GetCapabilities"
	callAddressSpaces    = "IpamDriver.GetDefaultAddressSpaces"
	callRequestPool      = "IpamDriver.RequestPool"
	callReleasePool      = "IpamDriver.ReleasePool"
	callRequestAddress   = "IpamDriver.RequestAddress"
	callReleaseAddress   = "IpamDriver.ReleaseAddress"
)

type activateResponse struct {
	Implements []string
}

type netCapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// ipamData is one address family's pool of a network, as Docker has it
// after asking the IPAM driver (Gateway in CIDR form, "10.1.0.1/16").
type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]json.RawMessage
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct { // DeleteNetwork, FreeNetwork
	NetworkID string
}

// endpointInterface is the container interface as Docker planned it
// (CreateEndpoint) or as the driver completes it (the response: only the
// fields Docker left empty may be set).
type endpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

// endpointRef names an endpoint; the endpoint calls' requests embed it.
type endpointRef struct {
	NetworkID  string
	EndpointID string
}

func (r endpointRef) ref() endpointRef { return r }

type createEndpointRequest struct {
	endpointRef
	Interface *endpointInterface
	Options   map[string]json.RawMessage
}

type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

type endpointRequest struct { // DeleteEndpoint, EndpointOperInfo, Leave, RevokeExternalConnectivity
	endpointRef
}

type operInfoResponse struct {
	Value map[string]string
}

type joinRequest struct {
	endpointRef
	SandboxKey string
	Options    map[string]json.RawMessage
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type joinResponse struct {
	InterfaceName         interfaceName
	Gateway               string `json:",omitempty"`
	DisableGatewayService bool
}

type externalRequest struct { // ProgramExternalConnectivity
	endpointRef
	Options map[string]json.RawMessage
}

type discoveryRequest struct { // DiscoverNew, DiscoverDelete
	DiscoveryType int
	DiscoveryData json.RawMessage
}

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

// poolRef names a pool; the requests of the calls after RequestPool
// embed it.
type poolRef struct {
	PoolID string
}

func (r poolRef) poolID() string { return r.PoolID }

type poolRequest struct { // ReleasePool
	poolRef
}

type requestAddressRequest struct {
	poolRef
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	poolRef
	Address string
}

// errorResponse is Docker's error format. Docker reads Err from any
// non-200 answer and shows "<call>: <Err>" (e.g. "IpamDriver.RequestPool:
// ..."); with HTTP 200 the IPAM client would look at a field named Error
// instead, so errors always go with a non-200 status.
type errorResponse struct {
	Err string
}

// maxBody bounds a request body: Docker's largest (CreateEndpoint with a
// long port map) is a few kilobytes.
const maxBody = 1 << 20

// errEmptyBody is returned for a call that needs a body and got none.
var errEmptyBody = errors.New("empty request body")

// decode reads one JSON object into v. Syntax errors, type mismatches,
// trailing data and bodies over maxBody are errors; unknown top-level
// fields are not (a newer Docker may add some), while the option maps a
// user fills are checked by the handlers. Calls whose request carries
// nothing (Activate, GetCapabilities) never call decode: Docker sends
// them with an empty body and no Content-Type.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody
	}
	if len(body) > maxBody {
		return fmt.Errorf("request body over %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: data after the object")
	}
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("null")) {
		return errors.New("malformed JSON: null instead of an object")
	}
	return nil
}
