package etcd

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// RecordVersion is the version of the JSON records this package writes and
// reads. Records of another version are rejected, so that a future format
// is never misread.
const RecordVersion = 1

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "/ofctl-agent"

// Sub-trees and names under the prefix. Each host writes only under
// hosts/<host>/ (its record) and claims/<network>/<host>/ (its endpoint
// claims in that network), so that an etcd role per host confines it to
// those prefixes (one grant per network it may join), and a watch of
// claims/<network>/ sees one network's claims and nothing else.
const (
	dirNetworks  = "networks"
	dirHosts     = "hosts"
	dirClaims    = "claims"
	dirEndpoints = "endpoints" // under hosts/<host>/: the host layout (read; written as copies while old agents run); at the top: the old layout
	nameRecord   = "record"    // hosts/<host>/record
)

// RecordError is a key or value under the prefix that cannot be used. It is
// reported (kind "etcd-record") and the record is ignored.
type RecordError struct {
	Key    string
	Reason string
}

func (e *RecordError) Error() string { return fmt.Sprintf("etcd record %s: %s", e.Key, e.Reason) }

// ConflictError is a record that lost a conflict: another record holds the
// same IP or MAC in its network, the same VNI, or the same tunnel IP.
type ConflictError struct {
	Key    string // the losing record
	What   string // "ip", "mac", "vni", "tunnel_ip" or "name"
	Winner string // the record that holds it
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("etcd record %s: %s is already held by %s", e.Key, e.What, e.Winner)
}

// OldLayoutError is a record of the key layout of earlier versions
// (<prefix>/hosts/<host> and <prefix>/endpoints/<network>/<ip>/<host>),
// where a host's keys share no prefix of their own and etcd cannot confine
// who writes them. Such records are ignored and reported once per host
// (kind "etcd-old-layout").
type OldLayoutError struct {
	Key  string // the first such record seen of the host
	Host string
}

func (e *OldLayoutError) Error() string {
	return fmt.Sprintf("etcd record %s: host %s publishes in the old key layout (an ofctl-agent without "+
		"per-host prefixes); its records are ignored until its agent is upgraded", e.Key, e.Host)
}

// keys builds and parses the key layout under one prefix.
type keys struct{ prefix string }

// normalizePrefix returns the prefix without trailing slashes; "" becomes
// DefaultPrefix.
func normalizePrefix(p string) (string, error) {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return DefaultPrefix, nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("etcd prefix %q must start with /", p)
	}
	return p, nil
}

func (k keys) root() string               { return k.prefix + "/" }
func (k keys) network(name string) string { return k.prefix + "/" + dirNetworks + "/" + name }
func (k keys) probe() string              { return k.prefix + "/probe" }

// hostPrefix is everything host name writes, and nothing else: the range
// of its etcd role's readwrite permission.
func (k keys) hostPrefix(name string) string { return k.prefix + "/" + dirHosts + "/" + name + "/" }
func (k keys) host(name string) string       { return k.hostPrefix(name) + nameRecord }

// claimsRoot holds every network's claims; claims is one network's;
// claimPrefix is one host's claims in one network: the range of its etcd
// role's readwrite permission for that network.
func (k keys) claimsRoot() string           { return k.prefix + "/" + dirClaims + "/" }
func (k keys) claims(network string) string { return k.claimsRoot() + network + "/" }
func (k keys) claimPrefix(network, host string) string {
	return k.claims(network) + host + "/"
}

// endpoint is the key of host's claim on ip in network.
func (k keys) endpoint(network string, ip netip.Addr, host string) string {
	return k.claimPrefix(network, host) + ip.String()
}

// hostEndpoint is the key of the same claim in the host layout
// (hosts/<host>/endpoints/<network>/<ip>), which agents of the previous
// version write and read: still read, and written as a copy of the claim
// while a host of the previous version is alive (Publisher).
func (k keys) hostEndpoint(network string, ip netip.Addr, host string) string {
	return k.hostPrefix(host) + dirEndpoints + "/" + network + "/" + ip.String()
}

// oldHost is a host's record in the old layout.
func (k keys) oldHost(name string) string { return k.prefix + "/" + dirHosts + "/" + name }

// keyKind says which sub-tree a key is in.
type keyKind int

const (
	kindOther keyKind = iota
	kindNetwork
	kindHost
	kindEndpoint  // a claim: claims/<network>/<host>/<ip>, or hosts/<host>/endpoints/<network>/<ip> (legacy set)
	kindOldLayout // a record of the old layout: host is set
)

// parsedKey is a key split into its parts.
type parsedKey struct {
	kind    keyKind
	name    string // network name
	network string // endpoint keys
	ip      netip.Addr
	host    string // host and endpoint keys
	legacy  bool   // an endpoint key of the host layout
}

// parse splits a key under the prefix. Keys of other sub-trees, and names
// under a host's prefix other than record and endpoints/, (kindOther) are
// not ours to judge and are ignored without an error: later versions may
// add some.
func (k keys) parse(key string) (parsedKey, error) {
	rest, ok := strings.CutPrefix(key, k.root())
	if !ok {
		return parsedKey{}, nil
	}
	var buf [maxKeyParts]string
	parts := splitKey(rest, &buf)
	bad := func(reason string) (parsedKey, error) { return parsedKey{}, &RecordError{Key: key, Reason: reason} }
	switch parts[0] {
	case dirNetworks:
		if len(parts) != 2 || parts[1] == "" {
			return bad("want networks/<name>")
		}
		return parsedKey{kind: kindNetwork, name: parts[1]}, nil
	case dirHosts:
		return k.parseHostKey(key, parts, bad)
	case dirClaims:
		if len(parts) != 4 || parts[1] == "" || parts[2] == "" {
			return bad("want claims/<network>/<host>/<ip>")
		}
		ip, err := parseIP(parts[3])
		if err != nil {
			return bad(err.Error())
		}
		return parsedKey{kind: kindEndpoint, network: parts[1], ip: ip, host: parts[2]}, nil
	case dirEndpoints: // old layout: endpoints/<network>/<ip>/<host>
		if len(parts) != 4 || parts[3] == "" {
			return bad("want hosts/<host>/endpoints/<network>/<ip>")
		}
		return parsedKey{kind: kindOldLayout, host: parts[3]}, nil
	}
	return parsedKey{}, nil
}

// maxKeyParts bounds the path elements a key of ours can have (5); more
// are reported as too many.
const maxKeyParts = 6

// splitKey splits a key's path at "/" into buf without allocating: the
// listing of 100,000 keys parses each once. A key of more than
// maxKeyParts-1 elements returns maxKeyParts parts, the last holding the rest.
func splitKey(rest string, buf *[maxKeyParts]string) []string {
	n := 0
	for n < maxKeyParts-1 {
		part, after, found := strings.Cut(rest, "/")
		buf[n], n = part, n+1
		if !found {
			return buf[:n]
		}
		rest = after
	}
	buf[n] = rest
	return buf[:n+1]
}

// parseHostKey splits a key under hosts/.
func (k keys) parseHostKey(key string, parts []string, bad func(string) (parsedKey, error)) (parsedKey, error) {
	switch {
	case len(parts) < 2 || parts[1] == "":
		return bad("want hosts/<host>/record or hosts/<host>/endpoints/<network>/<ip>")
	case len(parts) == 2: // old layout: hosts/<host>
		return parsedKey{kind: kindOldLayout, host: parts[1]}, nil
	case parts[2] == nameRecord:
		if len(parts) != 3 {
			return bad("want hosts/<host>/record")
		}
		return parsedKey{kind: kindHost, host: parts[1]}, nil
	case parts[2] == dirEndpoints:
		if len(parts) != 5 || parts[3] == "" {
			return bad("want hosts/<host>/endpoints/<network>/<ip>")
		}
		ip, err := parseIP(parts[4])
		if err != nil {
			return bad(err.Error())
		}
		return parsedKey{kind: kindEndpoint, network: parts[3], ip: ip, host: parts[1], legacy: true}, nil
	}
	return parsedKey{}, nil
}

// parseIP reads the IP element of a claim's key.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() || !dottedQuad(ip, s) {
		return netip.Addr{}, fmt.Errorf("ip %q is not an IPv4 address in dotted-quad form", s)
	}
	return ip, nil
}

// dottedQuad reports whether s is ip's canonical form (no leading zeros),
// without allocating.
func dottedQuad(ip netip.Addr, s string) bool {
	var buf [len("255.255.255.255")]byte
	return string(ip.AppendTo(buf[:0])) == s
}

// NetworkRecord is the value of networks/<name>.
type NetworkRecord struct {
	Version int    `json:"version"`
	VNI     uint32 `json:"vni"`
	Subnet  string `json:"subnet"`
	NAT     *bool  `json:"nat,omitempty"` // outbound NAT; absent: true (the file's nat key)
}

// HostRecord is the value of hosts/<name>/record.
// ClaimsLayout says that the host's agent reads claims in the claims
// layout; the previous version's agents read the host layout alone and
// write records without it (they ignore it when they read, as any field
// they do not know). While a host without it is alive, upgraded
// publishers write their claims in both layouts (docs/etcd.md, Upgrading
// from the host layout).
type HostRecord struct {
	Version      int    `json:"version"`
	TunnelIP     string `json:"tunnel_ip"`
	ClaimsLayout bool   `json:"claims_layout,omitempty"`
}

// EndpointRecord is the value of claims/<network>/<host>/<ip> (and of
// hosts/<host>/endpoints/<network>/<ip>, the host layout).
// Name is the endpoint's DNS name (endpoint.KeyName), absent for none:
// records written before names existed stay valid.
type EndpointRecord struct {
	Version int    `json:"version"`
	MAC     string `json:"mac"`
	Name    string `json:"name,omitempty"`
}

// decode unmarshals a record and checks its version.
func decode(key string, value []byte, into any, version func() int) error {
	if err := json.Unmarshal(value, into); err != nil {
		return &RecordError{Key: key, Reason: "not a JSON record: " + err.Error()}
	}
	if v := version(); v != RecordVersion {
		return &RecordError{Key: key, Reason: fmt.Sprintf("version %d is not supported (want %d)", v, RecordVersion)}
	}
	return nil
}

// parseNetwork decodes and validates a network record.
func parseNetwork(key, name string, value []byte) (cluster.Network, error) {
	var r NetworkRecord
	if err := decode(key, value, &r, func() int { return r.Version }); err != nil {
		return cluster.Network{}, err
	}
	n := cluster.Network{Name: name, VNI: r.VNI, NoNAT: r.NAT != nil && !*r.NAT}
	p, err := netip.ParsePrefix(r.Subnet)
	if err != nil {
		return n, &RecordError{Key: key, Reason: fmt.Sprintf("subnet %q is not an IPv4 prefix", r.Subnet)}
	}
	n.Subnet = p
	if err := cluster.Validate(cluster.View{Networks: []cluster.Network{n}}); err != nil {
		return n, &RecordError{Key: key, Reason: err.Error()}
	}
	return n, nil
}

// parseHost decodes and validates a host record; claims is its
// ClaimsLayout.
func parseHost(key, name string, value []byte) (h cluster.Host, claims bool, err error) {
	var r HostRecord
	if err := decode(key, value, &r, func() int { return r.Version }); err != nil {
		return cluster.Host{}, false, err
	}
	h = cluster.Host{Name: name}
	ip, err := netip.ParseAddr(r.TunnelIP)
	if err != nil {
		return h, false, &RecordError{Key: key, Reason: fmt.Sprintf("tunnel_ip %q is not an IPv4 address", r.TunnelIP)}
	}
	h.TunnelIP = ip
	if err := cluster.Validate(cluster.View{Hosts: []cluster.Host{h}}); err != nil {
		return h, false, &RecordError{Key: key, Reason: err.Error()}
	}
	return h, r.ClaimsLayout, nil
}

// parseEndpoint decodes an endpoint record into a unicast MAC and its DNS
// name ("" for none). A name that is not a DNS label refuses the record,
// as the endpoint contract refuses such an interface.
func parseEndpoint(key string, value []byte) ([6]byte, string, error) {
	var r EndpointRecord
	mac, fast := endpointFast(value)
	bad := func(text string) ([6]byte, string, error) {
		return [6]byte{}, "", &RecordError{Key: key, Reason: fmt.Sprintf("mac %q is not a unicast 48-bit MAC", text)}
	}
	if !fast {
		if err := decode(key, value, &r, func() int { return r.Version }); err != nil {
			return [6]byte{}, "", err
		}
		m, err := net.ParseMAC(r.MAC)
		if err != nil || len(m) != 6 {
			return bad(r.MAC)
		}
		mac = [6]byte(m)
	}
	if mac[0]&1 != 0 || mac == [6]byte{} {
		if fast {
			return bad(net.HardwareAddr(mac[:]).String()) // the record's text: lower-case, colons
		}
		return bad(r.MAC)
	}
	if r.Name != "" {
		if err := endpoint.ValidateName(r.Name); err != nil {
			return [6]byte{}, "", &RecordError{Key: key, Reason: fmt.Sprintf("name %q: %v", r.Name, err)}
		}
	}
	return [6]byte(mac), r.Name, nil
}

// endpointFast reads an endpoint record in the exact form EncodeEndpoint
// writes, {"version":1,"mac":"xx:xx:xx:xx:xx:xx"} with lower-case hex,
// without encoding/json: the initial list decodes 100,000 of them. Any
// other form (a name, other spacing or case, other fields) is not fast:
// the caller decodes it with encoding/json, which gives the same result.
func endpointFast(v []byte) (mac [6]byte, ok bool) {
	const head, tail = `{"version":1,"mac":"`, `"}`
	const macLen = len("00:00:00:00:00:00")
	if len(v) != len(head)+macLen+len(tail) || string(v[:len(head)]) != head || string(v[len(v)-len(tail):]) != tail {
		return mac, false
	}
	m := v[len(head) : len(head)+macLen]
	for i := range mac {
		if i > 0 && m[3*i-1] != ':' {
			return mac, false
		}
		hi, ok1 := lowerHex(m[3*i])
		lo, ok2 := lowerHex(m[3*i+1])
		if !ok1 || !ok2 {
			return mac, false
		}
		mac[i] = hi<<4 | lo
	}
	return mac, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Encoders for writers (the publisher, tests, tools).

// EncodeNetwork returns the record of a network.
func EncodeNetwork(n cluster.Network) []byte {
	return mustJSON(NetworkRecord{Version: RecordVersion, VNI: n.VNI, Subnet: n.Subnet.String()})
}

// EncodeHost returns the record of a host whose agent reads the claims
// layout (this version's).
func EncodeHost(tunnelIP netip.Addr) []byte {
	return mustJSON(HostRecord{Version: RecordVersion, TunnelIP: tunnelIP.String(), ClaimsLayout: true})
}

// EncodeEndpoint returns the record of an endpoint without a name.
func EncodeEndpoint(mac net.HardwareAddr) []byte { return EncodeNamedEndpoint(mac, "") }

// EncodeNamedEndpoint returns the record of an endpoint with its DNS name
// ("" for none: the key is left out).
func EncodeNamedEndpoint(mac net.HardwareAddr, name string) []byte {
	return mustJSON(EndpointRecord{Version: RecordVersion, MAC: mac.String(), Name: name})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // not reached: plain structs of strings and numbers
	}
	return b
}

// Key helpers for writers.

// NetworkKey is the key of a network under prefix.
func NetworkKey(prefix, name string) string { return keysFor(prefix).network(name) }

// HostKey is the key of a host's record under prefix.
func HostKey(prefix, name string) string { return keysFor(prefix).host(name) }

// HostPrefix is the prefix under which host name writes its host record
// (and nothing else does): one of its etcd role's readwrite ranges.
func HostPrefix(prefix, name string) string { return keysFor(prefix).hostPrefix(name) }

// ClaimPrefix is the prefix under which host writes its endpoint claims in
// network (and nothing else does): its etcd role's readwrite range for
// that network.
func ClaimPrefix(prefix, network, host string) string {
	return keysFor(prefix).claimPrefix(network, host)
}

// EndpointKey is the key of one host's claim on an IP in a network.
func EndpointKey(prefix, network string, ip netip.Addr, host string) string {
	return keysFor(prefix).endpoint(network, ip, host)
}

// HostEndpointKey is the key of the same claim in the host layout, which
// agents of the previous version write and read (still read; written as a
// copy while such agents run).
func HostEndpointKey(prefix, network string, ip netip.Addr, host string) string {
	return keysFor(prefix).hostEndpoint(network, ip, host)
}

func keysFor(prefix string) keys {
	p, err := normalizePrefix(prefix)
	if err != nil {
		p = prefix
	}
	return keys{prefix: p}
}
