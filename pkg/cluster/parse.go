package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrEmpty means the file holds no YAML document at all. It is refused
// rather than read as "no networks": an editor or a copy that truncated
// the file must not tear the cluster down. Write "networks: []" for that.
var ErrEmpty = errors.New("file is empty (write \"networks: []\" for a cluster without networks)")

// rawFile mirrors the file format; text fields are parsed after decoding so
// that their errors name the item and line.
type rawFile struct {
	Networks []rawNetwork `yaml:"networks"`
	Hosts    []rawHost    `yaml:"hosts"`
}

type rawNetwork struct {
	Name   string `yaml:"name"`
	VNI    *int64 `yaml:"vni"`
	Subnet string `yaml:"subnet"`
	NAT    *bool  `yaml:"nat"` // default true
	// Gateway is false to turn the gateways off; true or absent: on.
	Gateway *bool `yaml:"gateway"`
}

type rawHost struct {
	Name     string            `yaml:"name"`
	TunnelIP string            `yaml:"tunnel_ip"`
	Ranges   map[string]string `yaml:"ranges"`
	Gateways map[string]string `yaml:"gateways"`
}

// LoadFile reads and parses one cluster file. A missing file gives an error
// that wraps fs.ErrNotExist.
func LoadFile(path string) (View, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return View{}, fmt.Errorf("cluster file: %w", err)
	}
	v, err := Parse(data)
	if err != nil {
		return View{}, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return v, nil
}

// Parse decodes and validates the YAML cluster file format (see the package
// documentation). It reports every problem of the file in one joined error.
// The returned view is normalized; its Revision is 0.
func Parse(data []byte) (View, error) {
	raw, err := decodeStrict(data)
	if err != nil {
		return View{}, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return View{}, err // not reached: decodeStrict read it
	}
	if len(root.Content) == 0 || root.Content[0].Tag == "!!null" {
		return View{}, ErrEmpty // a document of just "~" or "null"
	}
	loc := positions(&root)
	v, errs := convert(raw, loc)
	errs = append(errs, check(v, loc)...)
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return errorLine(a) - errorLine(b) })
		return View{}, errors.Join(errs...)
	}
	v.Normalize()
	return v, nil
}

func errorLine(err error) int {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Line
	}
	return 0
}

// decodeStrict decodes exactly one document and refuses unknown fields.
func decodeStrict(data []byte) (rawFile, error) {
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&raw)
	if errors.Is(err, io.EOF) {
		return raw, ErrEmpty
	}
	if err != nil {
		return raw, yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return raw, nil
	case err != nil:
		return raw, yamlError(err)
	default:
		return raw, fmt.Errorf("line %d: a second YAML document: the file must hold one", extra.Line)
	}
}

// yamlError splits the decoder's list of problems into one error each and
// rewords the unknown-field message, which names Go types.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err // a syntax error, already prefixed "yaml: "
	}
	// Name the file's parts rather than this package's Go types.
	types := strings.NewReplacer("[]cluster.rawNetwork", "a list of networks", "[]cluster.rawHost", "a list of hosts",
		"cluster.rawFile", "a mapping of networks and hosts", "cluster.rawNetwork", "a network mapping",
		"cluster.rawHost", "a host mapping")
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if pre, rest, ok := strings.Cut(msg, ": field "); ok {
			if field, _, ok := strings.Cut(rest, " not found in type "); ok {
				msg = fmt.Sprintf("%s: unknown field %q", pre, field)
			}
		}
		errs = append(errs, errors.New(types.Replace(msg)))
	}
	return errors.Join(errs...)
}

// convert turns raw text fields into typed values, reporting what does not
// parse. Values that fail are left zero (VNI 0, invalid addresses), which
// check then stays quiet about.
func convert(raw rawFile, loc *locator) (View, []error) {
	var p problems
	v := View{Networks: make([]Network, 0, len(raw.Networks)), Hosts: make([]Host, 0, len(raw.Hosts))}
	for i, rn := range raw.Networks {
		line, item := loc.network(i), networkItem(i, rn.Name)
		n := Network{Name: rn.Name}
		switch {
		case rn.VNI == nil:
			p.add(line, item, "vni is missing")
		case *rn.VNI < MinVNI || *rn.VNI > MaxVNI:
			p.add(line, item, "vni %d is outside %d-%d", *rn.VNI, MinVNI, MaxVNI)
		default:
			n.VNI = uint32(*rn.VNI)
		}
		n.Subnet = parsePrefix(&p, line, item, "subnet", rn.Subnet)
		n.NoNAT = rn.NAT != nil && !*rn.NAT
		n.NoGateway = rn.Gateway != nil && !*rn.Gateway
		v.Networks = append(v.Networks, n)
	}
	for i, rh := range raw.Hosts {
		line, item := loc.host(i), hostItem(i, rh.Name)
		h := Host{Name: rh.Name, TunnelIP: parseAddr(&p, line, item, "tunnel_ip", rh.TunnelIP)}
		if len(rh.Ranges) > 0 {
			h.Ranges = make(map[string]netip.Prefix, len(rh.Ranges))
		}
		for _, net := range sortedKeys(rh.Ranges) {
			h.Ranges[net] = parsePrefix(&p, loc.hostRange(i, net), item+" range "+net, "prefix", rh.Ranges[net])
		}
		if len(rh.Gateways) > 0 {
			h.Gateways = make(map[string]netip.Addr, len(rh.Gateways))
		}
		for _, net := range sortedKeys(rh.Gateways) {
			h.Gateways[net] = parseAddr(&p, loc.hostGateway(i, net), item+" gateway "+net, "address", rh.Gateways[net])
		}
		v.Hosts = append(v.Hosts, h)
	}
	return v, p
}

func parsePrefix(p *problems, line int, item, field, text string) netip.Prefix {
	if text == "" {
		p.add(line, item, "%s is missing", field)
		return netip.Prefix{}
	}
	pfx, err := netip.ParsePrefix(text)
	if err != nil {
		p.add(line, item, "%s %q is not an IPv4 prefix like 10.0.0.0/16", field, text)
		return netip.Prefix{}
	}
	return pfx
}

func parseAddr(p *problems, line int, item, field, text string) netip.Addr {
	if text == "" {
		p.add(line, item, "%s is missing", field)
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(text)
	if err != nil {
		p.add(line, item, "%s %q is not an IPv4 address", field, text)
		return netip.Addr{}
	}
	return a
}

// positions finds the line of every list item and range key in the document.
func positions(root *yaml.Node) *locator {
	loc := &locator{parsed: true}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return loc
	}
	top := root.Content[0]
	if nets := mapValue(top, "networks"); nets != nil && nets.Kind == yaml.SequenceNode {
		for _, item := range nets.Content {
			loc.networks = append(loc.networks, item.Line)
		}
	}
	if hosts := mapValue(top, "hosts"); hosts != nil && hosts.Kind == yaml.SequenceNode {
		for _, item := range hosts.Content {
			loc.hosts = append(loc.hosts, item.Line)
			lines := map[string]int{}
			if r := mapValue(item, "ranges"); r != nil && r.Kind == yaml.MappingNode {
				for k := 0; k+1 < len(r.Content); k += 2 {
					lines[r.Content[k].Value] = r.Content[k].Line
				}
			}
			loc.ranges = append(loc.ranges, lines)
			gws := map[string]int{}
			if g := mapValue(item, "gateways"); g != nil && g.Kind == yaml.MappingNode {
				for k := 0; k+1 < len(g.Content); k += 2 {
					gws[g.Content[k].Value] = g.Content[k].Line
				}
			}
			loc.gateways = append(loc.gateways, gws)
		}
	}
	return loc
}

// mapValue returns the value node for key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value == key {
			return m.Content[k+1]
		}
	}
	return nil
}
