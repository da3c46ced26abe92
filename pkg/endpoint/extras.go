package endpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidName is wrapped by every error of ValidateName.
var ErrInvalidName = errors.New("invalid DNS name")

// MaxLabel is the longest DNS label (RFC 1035 2.3.4).
const MaxLabel = 63

// ValidateName checks that name can be an endpoint's name (external_ids
// ofctl-agent.name) and so a name in DNS: one label as RFC 1123 allows host
// names, 1 to 63 ASCII letters, digits and hyphens, neither first nor last a
// hyphen. Case does not matter (names are matched case-insensitively and
// answered lowercase). The error says what is wrong.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	case len(name) > MaxLabel:
		return fmt.Errorf("%w %q: %d characters, at most %d", ErrInvalidName, name, len(name), MaxLabel)
	case name[0] == '-' || name[len(name)-1] == '-':
		return fmt.Errorf("%w %q: starts or ends with '-'", ErrInvalidName, name)
	}
	pos := 0
	for _, c := range name {
		pos++
		if !isLabelChar(c) {
			return fmt.Errorf("%w %q: character %q at position %d (only ASCII letters, digits and '-')", ErrInvalidName, name, c, pos)
		}
	}
	return nil
}

func isLabelChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// Proto is the transport protocol of a published port.
type Proto string

// The protocols a port can be published for.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Published is one host port an endpoint asks for: traffic to HostPort on
// the host's addresses is forwarded to the endpoint's Port.
type Published struct {
	Proto    Proto
	HostPort uint16
	Port     uint16
}

// String is the mapping as written in external_ids: "tcp:8080:80".
func (p Published) String() string {
	return fmt.Sprintf("%s:%d:%d", p.Proto, p.HostPort, p.Port)
}

// ParsePorts reads the value of external_ids:ofctl-agent.ports, a comma
// separated list of proto:hostport:port ("tcp:8080:80,udp:5353:53"; proto
// tcp or udp, ports 1-65535). A host port may appear once per protocol. ""
// is no ports. The error says which item is wrong and why.
func ParsePorts(s string) ([]Published, error) {
	if s == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	out := make([]Published, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, item := range items {
		item = strings.TrimSpace(item)
		parts := strings.Split(item, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%q: want proto:hostport:port, e.g. tcp:8080:80", item)
		}
		p := Published{Proto: Proto(strings.ToLower(parts[0]))}
		if p.Proto != TCP && p.Proto != UDP {
			return nil, fmt.Errorf("%q: protocol %q, want tcp or udp", item, parts[0])
		}
		var err error
		if p.HostPort, err = parsePort(parts[1]); err != nil {
			return nil, fmt.Errorf("%q: host port: %w", item, err)
		}
		if p.Port, err = parsePort(parts[2]); err != nil {
			return nil, fmt.Errorf("%q: container port: %w", item, err)
		}
		key := fmt.Sprintf("%s/%d", p.Proto, p.HostPort)
		if seen[key] {
			return nil, fmt.Errorf("%q: host port %s given twice", item, key)
		}
		seen[key] = true
		out = append(out, p)
	}
	return out, nil
}

// FormatPorts is the external_ids value for ports (ParsePorts' inverse).
func FormatPorts(ports []Published) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number 1-65535", s)
	}
	return uint16(n), nil
}
