// Package agentapi is the agent's local API: what the processes that plumb
// containers on this host (ofctl-agent attach, the CNI plugin) ask the agent
// over a unix socket that only root can open. The agent holds the one
// address allocator of the host (the Docker plugin, inside the agent, calls
// it directly), so that two of them never hand out one address, and it
// knows whether its pipeline is in OVS.
//
// The protocol is HTTP/1.1 with JSON bodies:
//
//	GET    /v1/status             -> Status
//	GET    /v1/networks/{name}    -> Network
//	POST   /v1/addresses          AllocateRequest -> Allocation
//	DELETE /v1/addresses          ReleaseRequest  -> 204
//	GET    /v1/addresses          -> []Allocated (?network=N&owner-prefix=P filter)
//
// An error is {"code": "...", "error": "..."} with the HTTP status of its
// code (see Code); Client turns it back into an error that errors.Is
// matches against ErrUnknownNetwork, ErrAddressTaken and the others.
//
// An allocation is not a port: it holds the address for its owner until a
// port with that address appears on the bridge (the port then holds it, and
// removing the port frees it), until it is released, or until it expires.
// Asking again with the same owner gives the same address, so a client
// that retries never takes two. A client that dies between its allocation
// and its port leaves the allocation behind: whoever cleans up after it
// (CNI DEL and GC) lists the allocations by owner and releases them by
// owner, without knowing their addresses.
package agentapi

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// DefaultSocket is where the agent serves the API.
const DefaultSocket = "/run/ofctl-agent/agent.sock"

// Status says whether the agent is ready: its pipeline is in OVS.
type Status struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why not, for people
}

// Network is what a plumber needs to know of a network on this host.
type Network struct {
	Name   string       `json:"name"`
	Subnet netip.Prefix `json:"subnet"`
	// Gateway is this host's gateway address in the network: the
	// containers' default route. Invalid (absent) when the network has none
	// on this host.
	Gateway netip.Addr `json:"gateway,omitzero"`
	// MTU is the containers' interface MTU on this host.
	MTU int `json:"mtu"`
	// DNS is the resolver the network's containers use on this host (the
	// agent's, on the gateway); absent when the agent serves none there.
	DNS *DNS `json:"dns,omitempty"`
}

// DNS is what a container's resolv.conf (or a CNI result's dns section)
// says: nameserver, search domains, options.
type DNS struct {
	Nameservers []netip.Addr `json:"nameservers"`
	Search      []string     `json:"search,omitempty"`
	Options     []string     `json:"options,omitempty"`
}

// AllocateRequest asks for an address in Network. IP, when set, is the
// address wanted; unset, the allocator picks one of this host's share.
type AllocateRequest struct {
	Network string     `json:"network"`
	IP      netip.Addr `json:"ip,omitzero"`
	// Owner names who asks, e.g. "cni:<container id>/<ifname>": the same
	// owner asking again gets the same address.
	Owner string `json:"owner"`
}

// Allocation is an address held for its owner, with what the container's
// interface needs.
type Allocation struct {
	Network string       `json:"network"`
	Address netip.Prefix `json:"address"` // the address with the network's prefix length
	Gateway netip.Addr   `json:"gateway,omitzero"`
	MTU     int          `json:"mtu"`
	MAC     string       `json:"mac"` // the MAC the pipeline derives from the address
}

// HardwareAddr is a.MAC parsed.
func (a Allocation) HardwareAddr() (net.HardwareAddr, error) { return net.ParseMAC(a.MAC) }

// ReleaseRequest gives back an allocation. Releasing what is not held (or
// is held by another owner) is not an error: releases are retried.
type ReleaseRequest struct {
	Network string `json:"network"`
	// IP is the address to give back; unset: whatever Owner holds in
	// Network (a client killed before it learnt its address).
	IP    netip.Addr `json:"ip,omitzero"`
	Owner string     `json:"owner"`
}

// Allocated is one allocation in the list: who holds which address, and
// whether a port claims it yet.
type Allocated struct {
	Network string     `json:"network"`
	IP      netip.Addr `json:"ip"`
	Owner   string     `json:"owner"`
	// Port is the OVS port claiming the address; "" while the allocation
	// waits for it.
	Port string `json:"port,omitempty"`
	// Expires is when an allocation without a port lapses (absent: a port
	// holds the address).
	Expires time.Time `json:"expires,omitzero"`
}

// Code classifies an error of the API.
type Code string

// The codes, each with its HTTP status and the error Client returns for it.
const (
	CodeInvalid        Code = "invalid"         // 400: a malformed request
	CodeUnknownNetwork Code = "unknown-network" // 404: no such network in the cluster view
	CodeAddressTaken   Code = "address-taken"   // 409: the address is held, or not this host's
	CodeExhausted      Code = "exhausted"       // 409: no free address in this host's share
	CodeNotReady       Code = "not-ready"       // 503: the agent cannot answer yet
	CodeInternal       Code = "internal"        // 500
)

// The errors Client returns, for errors.Is.
var (
	ErrInvalid        = errors.New("invalid request")
	ErrUnknownNetwork = errors.New("unknown network")
	ErrAddressTaken   = errors.New("address not available")
	ErrExhausted      = errors.New("no free address")
	ErrNotReady       = errors.New("agent not ready")
	ErrInternal       = errors.New("agent failed")
	// ErrUnreachable: nothing answers on the socket (the agent is not
	// running, or another socket path was given).
	ErrUnreachable = errors.New("agent not reachable")
)

var codes = []struct {
	code   Code
	status int
	err    error
}{
	{CodeInvalid, http.StatusBadRequest, ErrInvalid},
	{CodeUnknownNetwork, http.StatusNotFound, ErrUnknownNetwork},
	{CodeAddressTaken, http.StatusConflict, ErrAddressTaken},
	{CodeExhausted, http.StatusConflict, ErrExhausted},
	{CodeNotReady, http.StatusServiceUnavailable, ErrNotReady},
	{CodeInternal, http.StatusInternalServerError, ErrInternal},
}

// CodeOf is the code of err: the first of the sentinel errors above that it
// wraps, else CodeInternal.
func CodeOf(err error) Code {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

func lookup(c Code) (status int, sentinel error) {
	for _, x := range codes {
		if x.code == c {
			return x.status, x.err
		}
	}
	return http.StatusInternalServerError, ErrInternal
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Code  Code   `json:"code"`
	Error string `json:"error"`
}
