package cluster

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Longest names accepted: network names end up in OVS external_ids and metric
// labels; host names may be fully qualified.
const (
	maxNetworkName = 63
	maxHostName    = 253
)

// FieldError is one problem found in a view or a cluster file. A file with
// several problems gives an errors.Join of them; errors.As finds the first.
type FieldError struct {
	Line int    // 1-based line in the file; 0 when not known
	Item string // what is wrong, e.g. `network "blue"` or `host "a" range blue`
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Item, e.Msg)
	}
	return e.Item + ": " + e.Msg
}

// Validate checks a view built by a backend other than the file parser (the
// file parser applies the same rules). It returns every problem joined.
func Validate(v View) error {
	return errors.Join(check(v, nil)...)
}

// locator maps list indexes to file lines. A nil locator knows no lines.
type locator struct {
	networks, hosts []int
	ranges          []map[string]int
	gateways        []map[string]int
	// parsed: values came from text whose missing or malformed values were
	// already reported, so a zero address or VNI is not reported again.
	parsed bool
}

func lineAt(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

func (l *locator) network(i int) int {
	if l == nil {
		return 0
	}
	return lineAt(l.networks, i)
}

func (l *locator) host(i int) int {
	if l == nil {
		return 0
	}
	return lineAt(l.hosts, i)
}

func (l *locator) hostRange(i int, network string) int {
	if l == nil || i >= len(l.ranges) {
		return l.host(i)
	}
	if line, ok := l.ranges[i][network]; ok {
		return line
	}
	return l.host(i)
}

func (l *locator) hostGateway(i int, network string) int {
	if l == nil || i >= len(l.gateways) {
		return l.host(i)
	}
	if line, ok := l.gateways[i][network]; ok {
		return line
	}
	return l.host(i)
}

func (l *locator) quiet() bool { return l != nil && l.parsed }

// where names an earlier item for "duplicate" messages.
func where(line int, list string, i int) string {
	if line > 0 {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

type problems []error

func (p *problems) add(line int, item, format string, args ...any) {
	*p = append(*p, &FieldError{Line: line, Item: item, Msg: fmt.Sprintf(format, args...)})
}

func networkItem(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("networks[%d]", i)
	}
	return fmt.Sprintf("network %q", name)
}

func hostItem(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("hosts[%d]", i)
	}
	return fmt.Sprintf("host %q", name)
}

func check(v View, loc *locator) []error {
	var p problems
	nets := checkNetworks(&p, v.Networks, loc)
	hosts := checkHosts(&p, v.Hosts, nets, loc)
	checkEndpoints(&p, v.EndpointList(), nets, hosts)
	checkGateways(&p, v, nets, loc)
	return p
}

// checkNetworks validates networks and returns them by name (first wins).
func checkNetworks(p *problems, list []Network, loc *locator) map[string]Network {
	byName := make(map[string]int, len(list))
	byVNI := make(map[uint32]int, len(list))
	for i, n := range list {
		line, item := loc.network(i), networkItem(i, n.Name)
		if msg := nameProblem(n.Name, maxNetworkName); msg != "" {
			p.add(line, item, "name %s", msg)
		} else if j, dup := byName[n.Name]; dup {
			p.add(line, item, "duplicate network name (first at %s)", where(loc.network(j), "networks", j))
		} else {
			byName[n.Name] = i
		}
		switch j, dup := byVNI[n.VNI]; {
		case n.VNI == 0 && loc.quiet(): // reported by the parser
		case n.VNI < MinVNI || n.VNI > MaxVNI:
			p.add(line, item, "vni %d is outside %d-%d", n.VNI, MinVNI, MaxVNI)
		case dup:
			p.add(line, item, "vni %d is also used by %s", n.VNI, networkItem(j, list[j].Name))
		default:
			byVNI[n.VNI] = i
		}
		if msg := prefixProblem(n.Subnet, loc.quiet()); msg != "" {
			p.add(line, item, "subnet %s", msg)
		}
	}
	out := make(map[string]Network, len(byName))
	for name, i := range byName {
		out[name] = list[i]
	}
	return out
}

// hostRange is one host's range in one network, for the overlap check.
type hostRange struct {
	host   int
	prefix netip.Prefix
}

// checkHosts validates hosts and their ranges; it returns the host names.
func checkHosts(p *problems, list []Host, nets map[string]Network, loc *locator) map[string]bool {
	names := make(map[string]int, len(list))
	tunnels := make(map[netip.Addr]int, len(list))
	perNet := map[string][]hostRange{}
	for i, h := range list {
		line, item := loc.host(i), hostItem(i, h.Name)
		if msg := nameProblem(h.Name, maxHostName); msg != "" {
			p.add(line, item, "name %s", msg)
		} else if j, dup := names[h.Name]; dup {
			p.add(line, item, "duplicate host name (first at %s)", where(loc.host(j), "hosts", j))
		} else {
			names[h.Name] = i
		}
		if msg := addrProblem(h.TunnelIP, loc.quiet()); msg != "" {
			p.add(line, item, "tunnel_ip %s", msg)
		} else if j, dup := tunnels[h.TunnelIP]; dup {
			p.add(line, item, "tunnel_ip %s is also used by %s", h.TunnelIP, hostItem(j, list[j].Name))
		} else {
			tunnels[h.TunnelIP] = i
		}
		for _, net := range sortedKeys(h.Ranges) {
			r := h.Ranges[net]
			if ok := checkRange(p, loc.hostRange(i, net), item+" range "+net, r, net, nets, loc.quiet()); ok {
				perNet[net] = append(perNet[net], hostRange{i, r})
			}
		}
	}
	for _, net := range sortedKeys(perNet) {
		checkOverlaps(p, net, perNet[net], list, loc)
	}
	known := make(map[string]bool, len(names))
	for name := range names {
		known[name] = true
	}
	return known
}

func checkRange(p *problems, line int, item string, r netip.Prefix, net string, nets map[string]Network, quiet bool) bool {
	n, ok := nets[net]
	if !ok {
		p.add(line, item, "unknown network %q", net)
		return false
	}
	if msg := prefixProblem(r, quiet); msg != "" {
		p.add(line, item, "%s", msg)
		return false
	}
	if prefixProblem(n.Subnet, false) != "" {
		return false // the network's own problem is reported already
	}
	if r.Bits() < n.Subnet.Bits() || !n.Subnet.Contains(r.Addr()) {
		p.add(line, item, "%s is outside the network's subnet %s", r, n.Subnet)
		return false
	}
	return true
}

// checkOverlaps reports ranges of one network that overlap another host's.
// Prefixes either nest or are disjoint, so after sorting by address it is
// enough to compare each range with the widest one seen so far.
func checkOverlaps(p *problems, net string, ranges []hostRange, hosts []Host, loc *locator) {
	slices.SortFunc(ranges, func(a, b hostRange) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return a.prefix.Bits() - b.prefix.Bits()
	})
	cover := ranges[0]
	for _, r := range ranges[1:] {
		if cover.prefix.Overlaps(r.prefix) {
			item := hostItem(r.host, hosts[r.host].Name) + " range " + net
			p.add(loc.hostRange(r.host, net), item, "%s overlaps %s of %s",
				r.prefix, cover.prefix, hostItem(cover.host, hosts[cover.host].Name))
			continue
		}
		cover = r
	}
}

func checkEndpoints(p *problems, list []RemoteEndpoint, nets map[string]Network, hosts map[string]bool) {
	seen := make(map[string]int, len(list))
	for i, e := range list {
		item := fmt.Sprintf("endpoints[%d] (%s %s)", i, e.Network, e.IP)
		n, ok := nets[e.Network]
		switch {
		case !ok:
			p.add(0, item, "unknown network %q", e.Network)
		case !e.IP.IsValid() || !e.IP.Is4():
			p.add(0, item, "ip is not an IPv4 address")
		case n.Subnet.IsValid() && !n.Subnet.Contains(e.IP):
			p.add(0, item, "ip is outside the network's subnet %s", n.Subnet)
		}
		if len(e.MAC) != 6 || e.MAC[0]&1 != 0 || allZero(e.MAC) {
			p.add(0, item, "mac %q is not a unicast 48-bit MAC", e.MAC.String())
		}
		if !hosts[e.Host] {
			p.add(0, item, "unknown host %q", e.Host)
		}
		key := e.Network + " " + e.IP.String()
		if j, dup := seen[key]; dup {
			p.add(0, item, "duplicate of endpoints[%d]", j)
		} else {
			seen[key] = i
		}
	}
}

func allZero(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// nameProblem accepts 1..max letters, digits, '.', '_' and '-', starting and
// ending with a letter or digit.
func nameProblem(s string, max int) string {
	switch {
	case s == "":
		return "is missing"
	case len(s) > max:
		return fmt.Sprintf("%q is longer than %d characters", s, max)
	case !isAlnum(s[0]) || !isAlnum(s[len(s)-1]):
		return fmt.Sprintf("%q must start and end with a letter or digit", s)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) && !strings.ContainsRune("._-", r) }); i >= 0 {
		return fmt.Sprintf("%q has a character other than letters, digits, '.', '_' or '-'", s)
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func prefixProblem(p netip.Prefix, quiet bool) string {
	switch {
	case !p.IsValid():
		if quiet {
			return ""
		}
		return "is missing"
	case !p.Addr().Is4():
		return fmt.Sprintf("%s is not IPv4", p)
	case p != p.Masked():
		return fmt.Sprintf("%s is not canonical: host bits are set (did you mean %s?)", p, p.Masked())
	}
	return ""
}

func addrProblem(a netip.Addr, quiet bool) string {
	switch {
	case !a.IsValid():
		if quiet {
			return ""
		}
		return "is missing"
	case !a.Is4():
		return fmt.Sprintf("%s is not IPv4", a)
	case !a.IsGlobalUnicast():
		return fmt.Sprintf("%s is not a unicast address", a)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
