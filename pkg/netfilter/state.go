package netfilter

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Proto is the transport protocol of a published port.
type Proto string

// The protocols a port can be published for.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Network is a container network this host serves through a gateway port.
type Network struct {
	Name    string       // the cluster's network name: chain names, comments, metric labels
	Subnet  netip.Prefix // the network's IPv4 subnet, e.g. 10.100.0.0/16
	Gateway string       // the gateway port's interface name in the host's namespace
	// Routed turns masquerading off (the cluster view's nat: false):
	// containers reach the outside with their own addresses, and the
	// outside must route the subnet back to this host.
	Routed bool
}

// Publish asks for a host port forwarded to a container's port.
type Publish struct {
	Network  string     // the network of the container
	Endpoint string     // who asked (the endpoint's identity): comments, metric labels, refusals
	Proto    Proto      // TCP or UDP
	HostPort uint16     // the port on the host's addresses
	IP       netip.Addr // the container's address, inside the network's subnet
	Port     uint16     // the container's port
}

// key is what two publishes must not share.
func (p Publish) key() string { return fmt.Sprintf("%s/%d", p.Proto, p.HostPort) }

func (p Publish) String() string {
	return fmt.Sprintf("publish %s/%d -> %s:%d of %q", p.Proto, p.HostPort, p.IP, p.Port, p.Endpoint)
}

// State is the desired state: everything the rules are built from.
type State struct {
	Networks  []Network
	Publishes []Publish // on a port conflict the first one in this order stays
	// Blocked are addresses containers must not reach, through the host or
	// on it (the wiring puts every host's underlay address here); Allowed
	// are exceptions to Blocked (the operator's allow-list).
	Blocked, Allowed []netip.Prefix
	// Underlay are the underlay's networks: a network with NAT on whose
	// subnet overlaps one is refused (its replies could not be told apart
	// from underlay traffic).
	Underlay []netip.Prefix
	// Uplinks are the interfaces outside traffic enters the host from
	// (replies to masqueraded connections, published ports): IPv4
	// forwarding is turned on for them and the gateway ports. Empty: the
	// interfaces of the namespace's default routes, looked up at each sync.
	Uplinks []string
}

// Errors a Refusal wraps, for errors.Is.
var (
	// ErrInvalid: the item is malformed (bad name, address, port...).
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the item is valid but another one holds what it asks
	// for (a host port, a network name, a gateway, a subnet).
	ErrConflict = errors.New("conflict")
)

// Refusal is an item of a State that the rules leave out, and why. Every
// other item is built as if the refused one were absent.
type Refusal struct {
	Kind string // "network", "publish", "address" or "uplink"
	Item string // the item, e.g. `network "blue"`
	Err  error  // wraps ErrInvalid or ErrConflict
}

func (r *Refusal) Error() string { return r.Item + ": " + r.Err.Error() }

// Unwrap returns the reason.
func (r *Refusal) Unwrap() error { return r.Err }

func refuse(kind, item string, base error, format string, args ...any) *Refusal {
	return &Refusal{Kind: kind, Item: item, Err: fmt.Errorf("%w: "+format, append([]any{base}, args...)...)}
}

// Limits of names: network names as the cluster view accepts them;
// endpoints fit a comment (the kernel keeps 256 bytes of user data).
const (
	maxNetworkName = 63
	maxEndpoint    = 128
	ifNameSize     = 16 // IFNAMSIZ, including the terminating NUL
)

// nameProblem accepts 1..max letters, digits, '.', '_' and '-', starting
// with a letter or digit (the cluster view's rule for network names).
func nameProblem(s string, max int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > max:
		return fmt.Sprintf("is longer than %d bytes", max)
	case !isAlnum(s[0]):
		return "must start with a letter or digit"
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Sprintf("has %q (letters, digits, '.', '_', '-' only)", c)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ifNameProblem applies the kernel's rule for interface names.
func ifNameProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) >= ifNameSize:
		return fmt.Sprintf("is longer than %d bytes", ifNameSize-1)
	case s == "." || s == "..":
		return "is . or .."
	case strings.ContainsAny(s, "/: \t\n\r\x00\"\\"):
		return "has '/', ':', a quote, a backslash or white space"
	}
	return ""
}

// endpointProblem accepts printable ASCII without quotes or backslashes
// (it ends up in a rule comment and a metric label).
func endpointProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxEndpoint:
		return fmt.Sprintf("is longer than %d bytes", maxEndpoint)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return fmt.Sprintf("has %q (printable ASCII without spaces, quotes or backslashes only)", c)
		}
	}
	return ""
}
