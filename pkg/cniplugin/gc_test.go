package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
)

// ipamAgent serves the agent's API from a real allocator (pkg/ipam), as
// the agent does.
type ipamAgent struct{ a *ipam.Allocator }

func (b ipamAgent) Status() agentapi.Status { return agentapi.Status{Ready: true} }
func (b ipamAgent) Network(name string) (agentapi.Network, error) {
	sub, gw, err := b.a.Network(name)
	return agentapi.Network{Name: name, Subnet: sub, Gateway: gw, MTU: 1450}, err
}
func (b ipamAgent) Allocate(_ context.Context, r agentapi.AllocateRequest) (agentapi.Allocation, error) {
	l, err := b.a.Allocate(r.Network, r.Owner, r.IP)
	return agentapi.Allocation{Network: l.Network, Address: l.Address}, err
}
func (b ipamAgent) Release(_ context.Context, r agentapi.ReleaseRequest) error {
	if r.IP.IsValid() {
		b.a.Release(r.Network, r.Owner, r.IP)
	} else {
		b.a.ReleaseOwner(r.Network, r.Owner)
	}
	return nil
}
func (b ipamAgent) Allocations(_ context.Context, network, prefix string) ([]agentapi.Allocated, error) {
	var l []agentapi.Allocated
	for _, h := range b.a.Allocations(network, prefix) {
		l = append(l, agentapi.Allocated{Network: h.Network, IP: h.IP, Owner: h.Owner, Port: h.Port, Expires: h.Expires})
	}
	return l, nil
}

// serveIPAM starts an agent API on a fresh allocator with networks blue
// and red, and returns the allocator and the socket.
func serveIPAM(t *testing.T) (*ipam.Allocator, string) {
	t.Helper()
	a, err := ipam.New(ipam.Config{Node: "ha"})
	if err != nil {
		t.Fatal(err)
	}
	a.SetView(cluster.View{
		Networks: []cluster.Network{{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")},
			{Name: "red", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/16")}},
		Hosts: []cluster.Host{{Name: "ha", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.100.1.0/24"),
			"red": netip.MustParsePrefix("10.200.1.0/24")}}},
	}, nil)
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: agentapi.Handler(ipamAgent{a}, agentapi.HandlerOptions{}), ReadHeaderTimeout: time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return a, path
}

// memPorts is a bridge in memory for the plugin (attach.Ports and the
// installed signal).
type memPorts struct{ ports []attach.Port }

func (m *memPorts) AddPort(context.Context, string, map[string]string) error {
	return errors.New("not used")
}
func (m *memPorts) DeletePort(_ context.Context, name string) error {
	for i, p := range m.ports {
		if p.Name == name {
			m.ports = append(m.ports[:i], m.ports[i+1:]...)
			break
		}
	}
	return nil
}
func (m *memPorts) Ports(context.Context) ([]attach.Port, error)            { return m.ports, nil }
func (m *memPorts) DatapathType(context.Context) (string, error)            { return "netdev", nil }
func (m *memPorts) WaitInstalled(context.Context, string, netip.Addr) error { return nil }

// noVeths is a host without veths: Detach finds nothing to delete.
type noVeths struct{ attach.Links }

func (noVeths) DeleteVeth(*attach.NetNS, string) error { return attach.ErrLinkNotFound }

func memPlugin(m *memPorts) *Plugin {
	return &Plugin{Links: noVeths{}, OpenPorts: func(context.Context, *NetConf, []string) (Ports, func(), error) {
		return m, func() {}, nil
	}}
}

func owners(a *ipam.Allocator, network string) string {
	var s []string
	for _, h := range a.Allocations(network, "") {
		s = append(s, h.IP.String()+"="+h.Owner)
	}
	return strings.Join(s, " ")
}

// TestGCReleasesAllocations: GC releases the allocations of the plugin's
// interfaces missing from the valid list (ADDs killed before their port)
// at once; valid ones, other owners' and other networks' stay; the
// address is handed out again.
func TestGCReleasesAllocations(t *testing.T) {
	a, sock := serveIPAM(t)
	for _, o := range []struct{ network, owner string }{
		{"blue", "cni:live/eth0"},     // 10.100.1.1
		{"blue", "cni:killed/eth0"},   // 10.100.1.2
		{"blue", "cni:live/net1"},     // 10.100.1.3: the valid container's other interface is not valid
		{"blue", "attach:x/eth0"},     // 10.100.1.4: not the plugin's
		{"red", "cni:killed/eth0"},    // another network's list
		{"blue", "cni:nosuffix"},      // not an owner the plugin makes: left alone
		{"blue", "cni:withport/eth0"}, // 10.100.1.6: its port, removed by GC first
	} {
		if _, err := a.Allocate(o.network, o.owner, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	a.SetPort("ofwithport", map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.6"})
	m := &memPorts{ports: []attach.Port{{Name: "ofwithport", ExternalIDs: map[string]string{endpoint.KeyOwner: Owner,
		endpoint.KeyContainerID: "withport", endpoint.KeyContainerIface: "eth0", endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.6"}}}}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni","agentSocket":%q,`+
		`"cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"}]}`, sock)
	if err := memPlugin(m).GC(&skel.CmdArgs{StdinData: []byte(conf)}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(m.ports) != 0 {
		t.Errorf("GC left port %v", m.ports)
	}
	if got, want := owners(a, "blue"), "10.100.1.1=cni:live/eth0 10.100.1.4=attach:x/eth0 10.100.1.5=cni:nosuffix"; got != want {
		t.Errorf("blue after GC: %s, want %s", got, want)
	}
	if got := owners(a, "red"); got != "10.200.1.1=cni:killed/eth0" {
		t.Errorf("red after blue's GC: %s", got)
	}
	if l, err := a.Allocate("blue", "cni:new/eth0", netip.Addr{}); err != nil || l.Address.Addr().String() != "10.100.1.2" {
		t.Errorf("the next ADD got %v (%v), want the killed ADD's 10.100.1.2 back", l.Address, err)
	}
}

// TestDelReleasesAllocationWithoutPort: DEL of an interface whose ADD
// died before its port releases the allocation at once; DEL again is
// fine.
func TestDelReleasesAllocationWithoutPort(t *testing.T) {
	a, sock := serveIPAM(t)
	for _, owner := range []string{"cni:other/eth0", "cni:killed/eth0"} {
		if _, err := a.Allocate("blue", owner, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni","agentSocket":%q}`, sock)
	p := memPlugin(&memPorts{})
	for range 2 {
		if err := p.Del(&skel.CmdArgs{ContainerID: "killed", IfName: "eth0", StdinData: []byte(conf)}); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if got := owners(a, "blue"); got != "10.100.1.1=cni:other/eth0" {
			t.Fatalf("after DEL: %s", got)
		}
	}
}

// TestGCAgentDown: with the agent unreachable GC still removes the stale
// ports and answers "try again later".
func TestGCAgentDown(t *testing.T) {
	m := &memPorts{ports: []attach.Port{{Name: "ofgone", ExternalIDs: map[string]string{endpoint.KeyOwner: Owner,
		endpoint.KeyContainerID: "gone", endpoint.KeyContainerIface: "eth0", endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.6"}}}}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni","agentSocket":%q}`, filepath.Join(t.TempDir(), "none.sock"))
	err := memPlugin(m).GC(&skel.CmdArgs{StdinData: []byte(conf)})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "not reachable") {
		t.Fatalf("GC without the agent: %v, want code 11", err)
	}
	if len(m.ports) != 0 {
		t.Errorf("GC left port %v", m.ports)
	}
}

func TestParseOwner(t *testing.T) {
	for in, want := range map[string]string{
		"cni:abc/eth0":  "abc eth0",
		"cni:a/b/eth0":  "a/b eth0",
		"cni:abc":       "",
		"cni:/eth0":     "",
		"cni:abc/":      "",
		"attach:a/eth0": "",
	} {
		id, ifname, ok := parseOwner(in)
		if got := id + " " + ifname; ok && got != want || !ok && want != "" {
			t.Errorf("parseOwner(%q) = %q %q %v, want %q", in, id, ifname, ok, want)
		}
	}
	if o := attach.Owner(Owner, "abc", "eth0"); o != "cni:abc/eth0" {
		t.Errorf("attach.Owner makes %q: parseOwner reads another format", o)
	}
}
