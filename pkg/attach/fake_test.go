package attach

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// journal is the ordered record of side effects both fakes share, so a test
// sees the order of netlink and OVS calls together.
type journal struct {
	calls []string
	fail  map[string]error // method name -> error to return (once)
}

func (j *journal) call(method, args string) error {
	j.calls = append(j.calls, method+" "+args)
	if err, ok := j.fail[method]; ok {
		delete(j.fail, method)
		return err
	}
	return nil
}

type fakeLink struct {
	ns, name, peer string // peer: name of the other end ("" once deleted)
	state          LinkState
	txOff          bool // TX checksum offload off (a new veth has it on)
}

// fakeLinks models veth pairs across namespaces well enough for Attach:
// deleting one end deletes the other, renames keep the pairing.
type fakeLinks struct {
	j       *journal
	links   map[string]*fakeLink // key ns|name
	readErr error                // TxChecksum's error
}

func newFakeLinks(j *journal) *fakeLinks { return &fakeLinks{j: j, links: map[string]*fakeLink{}} }

func key(ns, name string) string { return ns + "|" + name }

func (f *fakeLinks) get(ns, name string) (*fakeLink, error) {
	l, ok := f.links[key(ns, name)]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrLinkNotFound)
	}
	return l, nil
}

func (f *fakeLinks) Inspect(nsp *NetNS, name string) (LinkState, error) {
	ns := nsp.String()
	l, err := f.get(ns, name)
	if err != nil {
		return LinkState{}, err
	}
	return l.state, nil
}

func (f *fakeLinks) AddVeth(nsp *NetNS, name string, peerNSP *NetNS, peer LinkConfig) error {
	ns, pns := nsp.String(), peerNSP.String()
	if err := f.j.call("AddVeth", fmt.Sprintf("%s %s %s %s mac=%s mtu=%d", ns, name, pns, peer.Name, peer.MAC, peer.MTU)); err != nil {
		return err
	}
	if _, err := f.get(pns, peer.Name); err == nil {
		return fmt.Errorf("%s exists in %s", peer.Name, pns)
	}
	f.links[key(ns, name)] = &fakeLink{ns: ns, name: name, peer: key(pns, peer.Name), state: LinkState{Kind: "veth", MTU: peer.MTU}}
	f.links[key(pns, peer.Name)] = &fakeLink{ns: pns, name: peer.Name, peer: key(ns, name),
		state: LinkState{Kind: "veth", MTU: peer.MTU, MAC: peer.MAC}}
	return nil
}

func (f *fakeLinks) DeleteVeth(nsp *NetNS, name string) error {
	ns := nsp.String()
	if err := f.j.call("DeleteVeth", ns+" "+name); err != nil {
		return err
	}
	l, err := f.get(ns, name)
	if err != nil {
		return err
	}
	delete(f.links, key(ns, name))
	delete(f.links, l.peer)
	return nil
}

func (f *fakeLinks) relink(l *fakeLink, ns, name string) {
	delete(f.links, key(l.ns, l.name))
	l.ns, l.name = ns, name
	f.links[key(ns, name)] = l
	if p, ok := f.links[l.peer]; ok {
		p.peer = key(ns, name)
	}
}

func (f *fakeLinks) Configure(nsp *NetNS, name string, cfg LinkConfig) error {
	ns := nsp.String()
	if err := f.j.call("Configure", fmt.Sprintf("%s %s name=%s mac=%s mtu=%d addr=%s", ns, name, cfg.Name, cfg.MAC, cfg.MTU, cfg.Addr)); err != nil {
		return err
	}
	l, err := f.get(ns, name)
	if err != nil {
		return err
	}
	f.relink(l, ns, cfg.Name)
	l.state.MAC, l.state.MTU, l.state.Addrs, l.state.Up = cfg.MAC, cfg.MTU, []netip.Prefix{cfg.Addr}, true
	return nil
}

func (f *fakeLinks) SetUp(nsp *NetNS, name string) error {
	ns := nsp.String()
	if err := f.j.call("SetUp", ns+" "+name); err != nil {
		return err
	}
	l, err := f.get(ns, name)
	if err != nil {
		return err
	}
	l.state.Up = true
	return nil
}

func (f *fakeLinks) AddDefaultRoute(nsp *NetNS, name string, gw netip.Addr) error {
	ns := nsp.String()
	if err := f.j.call("AddDefaultRoute", ns+" "+name+" "+gw.String()); err != nil {
		return err
	}
	l, err := f.get(ns, name)
	if err != nil {
		return err
	}
	l.state.Gateway = gw
	return nil
}

// TxChecksum reads, like Inspect: not journaled; it fails with readErr.
func (f *fakeLinks) TxChecksum(nsp *NetNS, name string) (bool, error) {
	ns := nsp.String()
	if f.readErr != nil {
		return false, f.readErr
	}
	l, err := f.get(ns, name)
	if err != nil {
		return false, err
	}
	return !l.txOff, nil
}

func (f *fakeLinks) SetTxChecksum(nsp *NetNS, name string, on bool) error {
	ns := nsp.String()
	if err := f.j.call("SetTxChecksum", fmt.Sprintf("%s %s %s", ns, name, onOff(on))); err != nil {
		return err
	}
	l, err := f.get(ns, name)
	if err != nil {
		return err
	}
	l.txOff = !on
	return nil
}

// names lists the links that exist, sorted, as ns|name.
func (f *fakeLinks) names() []string { return slices.Sorted(maps.Keys(f.links)) }

// fakePorts is a bridge in memory, on the userspace datapath unless
// datapath says otherwise. addTakesEffect makes a failing AddPort still
// create the port (an OVSDB commit whose answer was lost).
type fakePorts struct {
	j              *journal
	ports          map[string]map[string]string
	addTakesEffect bool
	listErr        error
	datapath       string
	datapathErr    error
}

func newFakePorts(j *journal) *fakePorts {
	return &fakePorts{j: j, ports: map[string]map[string]string{}, datapath: DatapathNetdev}
}

func (f *fakePorts) DatapathType(context.Context) (string, error) { return f.datapath, f.datapathErr }

func (f *fakePorts) AddPort(_ context.Context, name string, ext map[string]string) error {
	err := f.j.call("AddPort", name)
	if err == nil || f.addTakesEffect {
		f.ports[name] = maps.Clone(ext)
	}
	return err
}

func (f *fakePorts) DeletePort(_ context.Context, name string) error {
	if err := f.j.call("DeletePort", name); err != nil {
		return err
	}
	delete(f.ports, name)
	return nil
}

func (f *fakePorts) Ports(context.Context) ([]Port, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []Port
	for _, n := range slices.Sorted(maps.Keys(f.ports)) {
		out = append(out, Port{Name: n, ExternalIDs: maps.Clone(f.ports[n])})
	}
	return out, nil
}

// methods reduces a journal to method names.
func methods(calls []string) string {
	var out []string
	for _, c := range calls {
		m, _, _ := strings.Cut(c, " ")
		out = append(out, m)
	}
	return strings.Join(out, ",")
}

// insertingPorts is fakePorts that is also a PortInserter; reads counts
// how often the bridge was listed.
type insertingPorts struct {
	*fakePorts
	reads int
}

func (f *insertingPorts) InsertPort(_ context.Context, name string, ext map[string]string) error {
	if err := f.j.call("InsertPort", name); err != nil {
		if f.addTakesEffect {
			f.ports[name] = maps.Clone(ext)
		}
		return err
	}
	if _, ok := f.ports[name]; ok {
		return fmt.Errorf("insert %s: %w", name, ErrPortExists)
	}
	f.ports[name] = maps.Clone(ext)
	return nil
}

func (f *insertingPorts) Ports(ctx context.Context) ([]Port, error) {
	f.reads++
	return f.fakePorts.Ports(ctx)
}
