package dockerplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Option keys Docker puts in the Options maps of its calls.
const (
	optGeneric     = "com.docker.network.generic"     // -o k=v of docker network create (a string map)
	optEnableIPv6  = "com.docker.network.enable_ipv6" // --ipv6
	optInternal    = "com.docker.network.internal"    // --internal (absent otherwise)
	optExposed     = "com.docker.network.endpoint.exposedports"
	optPortMap     = "com.docker.network.portmap"
	optMACAddress  = "com.docker.network.endpoint.macaddress" // base64 of the 6 bytes, with --mac-address
	optAddressType = "RequestAddressType"                     // IPAM: what the address is for
	addrGateway    = "com.docker.network.gateway"             // ... the network's gateway
)

// OptNetwork names the cluster view's network, as -o network=NAME (network
// driver) and --ipam-opt network=NAME (IPAM driver): Docker passes -o
// options to the network driver only and --ipam-opt to the IPAM driver
// only.
const OptNetwork = "network"

// networkOptions are the options of CreateNetwork.
type networkOptions struct {
	Network  string // -o network=NAME, "" if not given
	IPv6     bool
	Internal bool
}

// parseNetworkOptions reads CreateNetwork's Options. An -o option other
// than network is an error: a typo must not be silently ignored.
func parseNetworkOptions(opts map[string]json.RawMessage) (networkOptions, error) {
	var o networkOptions
	if raw, ok := opts[optGeneric]; ok && !isNull(raw) {
		var generic map[string]string
		if err := json.Unmarshal(raw, &generic); err != nil {
			return o, fmt.Errorf("option %s: %w", optGeneric, err)
		}
		for k, v := range generic {
			if k != OptNetwork {
				return o, fmt.Errorf("unknown option -o %s=%s (ofctl-agent knows -o %s=NAME)", k, v, OptNetwork)
			}
			if v == "" {
				return o, fmt.Errorf("option -o %s= is empty: name a network of the cluster view", OptNetwork)
			}
			o.Network = v
		}
	}
	var err error
	if o.IPv6, err = boolOption(opts, optEnableIPv6); err != nil {
		return o, err
	}
	if o.Internal, err = boolOption(opts, optInternal); err != nil {
		return o, err
	}
	return o, nil
}

func boolOption(opts map[string]json.RawMessage, key string) (bool, error) {
	raw, ok := opts[key]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fmt.Errorf("option %s: %w", key, err)
	}
	return b, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// ipamNetworkOption reads --ipam-opt: network=NAME is the only key.
func ipamNetworkOption(opts map[string]string) (string, error) {
	name := ""
	for k, v := range opts {
		if k != OptNetwork {
			return "", fmt.Errorf("unknown option --ipam-opt %s=%s (ofctl-agent knows --ipam-opt %s=NAME)", k, v, OptNetwork)
		}
		if v == "" {
			return "", fmt.Errorf("option --ipam-opt %s= is empty: name a network of the cluster view", OptNetwork)
		}
		name = v
	}
	return name, nil
}

// PortMapping is one published port (docker run -p HOSTIP:HOSTPORT:PORT/PROTO).
type PortMapping struct {
	Proto         string     // "tcp", "udp" or "sctp"
	HostIP        netip.Addr // zero: every address of the host
	HostPort      uint16
	ContainerPort uint16
}

// String is the -p form, e.g. "8080:80/tcp" or "192.0.2.1:8080:80/tcp".
func (p PortMapping) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.Proto)
	if p.HostIP.IsValid() {
		s = p.HostIP.String() + ":" + s
	}
	return s
}

// ExposedPort is a port the image or --expose declares.
type ExposedPort struct {
	Proto string
	Port  uint16
}

// IP protocol numbers Docker uses in port maps.
var protoNames = map[int]string{6: "tcp", 17: "udp", 132: "sctp"}

func protoName(n int) (string, error) {
	if s, ok := protoNames[n]; ok {
		return s, nil
	}
	return "", fmt.Errorf("unknown IP protocol %d", n)
}

// wirePortBinding is Docker's port map entry.
type wirePortBinding struct {
	Proto       int
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

// endpointOptions are the options of CreateEndpoint, Join and
// ProgramExternalConnectivity.
type endpointOptions struct {
	Exposed []ExposedPort
	Ports   []PortMapping
	MAC     net.HardwareAddr // from --mac-address, nil if not given
}

// parseEndpointOptions reads the port map, the exposed ports and the MAC.
// Docker adds no DNAT for a remote driver's endpoints; a mapping without a
// host port (-p 80) or with a range (-p 8000-8010:80) is refused because
// the published ports are one host port each.
func parseEndpointOptions(opts map[string]json.RawMessage) (endpointOptions, error) {
	var o endpointOptions
	if raw, ok := opts[optExposed]; ok && !isNull(raw) {
		var wire []wirePortBinding
		if err := json.Unmarshal(raw, &wire); err != nil {
			return o, fmt.Errorf("option %s: %w", optExposed, err)
		}
		for _, w := range wire {
			proto, err := protoName(w.Proto)
			if err != nil || w.Port == 0 {
				return o, fmt.Errorf("exposed port %d/%d: %s", w.Port, w.Proto, orText(err, "port 0"))
			}
			o.Exposed = append(o.Exposed, ExposedPort{Proto: proto, Port: w.Port})
		}
	}
	if raw, ok := opts[optPortMap]; ok && !isNull(raw) {
		var wire []wirePortBinding
		if err := json.Unmarshal(raw, &wire); err != nil {
			return o, fmt.Errorf("option %s: %w", optPortMap, err)
		}
		for _, w := range wire {
			p, err := portMapping(w)
			if err != nil {
				return o, err
			}
			o.Ports = append(o.Ports, p)
		}
		if err := noDuplicatePorts(o.Ports); err != nil {
			return o, err
		}
	}
	if raw, ok := opts[optMACAddress]; ok && !isNull(raw) {
		var b []byte // encoding/json reads base64 into []byte, as Docker wrote it
		if err := json.Unmarshal(raw, &b); err != nil {
			return o, fmt.Errorf("option %s: %w", optMACAddress, err)
		}
		mac, err := checkMAC(net.HardwareAddr(b))
		if err != nil {
			return o, err
		}
		o.MAC = mac
	}
	return o, nil
}

func portMapping(w wirePortBinding) (PortMapping, error) {
	proto, err := protoName(w.Proto)
	if err != nil {
		return PortMapping{}, fmt.Errorf("port map: %w", err)
	}
	p := PortMapping{Proto: proto, HostPort: w.HostPort, ContainerPort: w.Port}
	switch {
	case w.Port == 0:
		return p, fmt.Errorf("published port %s: container port 0", p)
	case w.HostPort == 0:
		return p, fmt.Errorf("-p %d/%s: give a host port (-p HOSTPORT:%d/%s): ofctl-agent does not pick one", w.Port, proto, w.Port, proto)
	case w.HostPortEnd != 0 && w.HostPortEnd != w.HostPort:
		return p, fmt.Errorf("-p %d-%d:%d/%s: host port ranges are not supported", w.HostPort, w.HostPortEnd, w.Port, proto)
	}
	if w.HostIP != "" {
		ip, err := netip.ParseAddr(w.HostIP)
		if err != nil || !ip.Is4() {
			return p, fmt.Errorf("published port %s: host address %q is not IPv4", p, w.HostIP)
		}
		if !ip.IsUnspecified() {
			p.HostIP = ip
		}
	}
	return p, nil
}

// noDuplicatePorts refuses two mappings of the same host port.
func noDuplicatePorts(ps []PortMapping) error {
	type key struct {
		proto string
		ip    netip.Addr
		port  uint16
	}
	seen := map[key]bool{}
	for _, p := range ps {
		k := key{p.Proto, p.HostIP, p.HostPort}
		if seen[k] {
			return fmt.Errorf("host port %d/%s is published twice", p.HostPort, p.Proto)
		}
		seen[k] = true
	}
	return nil
}

// parseMAC reads a MAC in text form and checks it is a unicast Ethernet one.
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("MAC address %q: %w", s, err)
	}
	return checkMAC(mac)
}

func checkMAC(mac net.HardwareAddr) (net.HardwareAddr, error) {
	if len(mac) != 6 || mac[0]&1 == 1 || slices.Equal(mac, make(net.HardwareAddr, 6)) {
		return nil, fmt.Errorf("MAC address %s is not a unicast Ethernet address", mac)
	}
	return mac, nil
}

func orText(err error, alt string) string {
	if err != nil {
		return err.Error()
	}
	return alt
}

// knownEndpointOptions are the option keys Docker 20.10 sends with
// endpoint calls; others are logged (a newer Docker) but not refused: the
// user cannot set endpoint options through the docker CLI.
var knownEndpointOptions = []string{optExposed, optPortMap, optMACAddress}

func unknownKeys(opts map[string]json.RawMessage, known []string) []string {
	var out []string
	for k := range opts {
		if !slices.Contains(known, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// joinNames lists names for a message: "a, b, c".
func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
