package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// fakePorts is a bridge: ports by name; wait decides WaitInstalled.
type fakePorts struct {
	mu     sync.Mutex
	ports  map[string]map[string]string
	ofport map[string]int
	wait   error
}

func (f *fakePorts) AddPort(_ context.Context, s ovsdb.PortSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports[s.Name] = maps.Clone(s.ExternalIDs)
	return nil
}

func (f *fakePorts) DeletePort(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, name)
	return nil
}

func (f *fakePorts) Interfaces() []ovsdb.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ovsdb.Interface
	for n, ids := range f.ports {
		out = append(out, ovsdb.Interface{Name: n, Port: n, ExternalIDs: maps.Clone(ids), OFPort: f.ofport[n]})
	}
	return out
}

func (f *fakePorts) WaitInstalled(context.Context, string, netip.Addr) error { return f.wait }

func (f *fakePorts) DatapathType(context.Context) (string, error) { return "netdev", nil }

// fakeLinks records the veths it holds.
type fakeLinks struct {
	callLog
	live map[string]bool
}

func (f *fakeLinks) AddVeth(host, peer string, mac []byte, mtu int, txOff bool) error {
	f.record(host + " " + peer + " " + net.HardwareAddr(mac).String() + fmt.Sprintf(" mtu %d txoff %v", mtu, txOff))
	f.live[host] = true
	return nil
}

func (f *fakeLinks) SetUp(string) error { return nil }

func (f *fakeLinks) DeleteVeth(name string) error { delete(f.live, name); return nil }

func (f *fakeLinks) Exists(name string) (bool, error) { return f.live[name], nil }

// TestHostEndpoints: Join makes the veth (MTU from the agent's API, MAC,
// TX checksum off on the userspace datapath) and the port with the
// contract's keys, and answers only once installed; a refused endpoint
// leaves nothing; Publish/Unpublish rewrite ofctl-agent.ports; Leave
// removes the port and the veth, also for an id it never saw.
func TestHostEndpoints(t *testing.T) {
	ports := &fakePorts{ports: map[string]map[string]string{}, ofport: map[string]int{}}
	links := &fakeLinks{live: map[string]bool{}}
	h, err := NewHostEndpoints(HostConfig{Ports: ports, Links: links,
		Network: func(name string) (agentapi.Network, error) { return agentapi.Network{Name: name, MTU: 1400}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{ID: epID, NetworkID: netID, Network: "blue", Address: netip.MustParsePrefix("10.1.0.2/16"),
		MAC: net.HardwareAddr{0x0a, 0x58, 10, 1, 0, 2}, SandboxKey: "/var/run/docker/netns/44e2ccddf62c",
		Ports: []PortMapping{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}}
	j, err := h.Join(context.Background(), ep)
	host, peer := VethNames(epID)
	if err != nil || j.Interface != peer {
		t.Fatalf("join: %+v, %v", j, err)
	}
	if got := links.calls(); got != host+" "+peer+" 0a:58:0a:01:00:02 mtu 1400 txoff true" {
		t.Errorf("veth: %s", got)
	}
	want := map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.2", endpoint.KeyMAC: "0a:58:0a:01:00:02",
		endpoint.KeyOwner: OwnerDocker, endpoint.KeyContainerID: ep.SandboxKey,
		KeyDockerEndpoint: epID, KeyDockerNetwork: netID, endpoint.KeyPorts: "tcp:8080:80"}
	if got := ports.ports[host]; !maps.Equal(got, want) {
		t.Errorf("port external_ids %v, want %v", got, want)
	}
	if err := h.Unpublish(context.Background(), epID); err != nil || ports.ports[host][endpoint.KeyPorts] != "" {
		t.Errorf("unpublish: %v, %v", err, ports.ports[host])
	}
	if err := h.Publish(context.Background(), epID, []PortMapping{{Proto: "udp", HostPort: 5353, ContainerPort: 53}}); err != nil || ports.ports[host][endpoint.KeyPorts] != "udp:5353:53" {
		t.Errorf("publish: %v, %v", err, ports.ports[host])
	}
	if err := h.Leave(context.Background(), epID); err != nil || len(ports.ports) != 0 || len(links.live) != 0 {
		t.Errorf("leave: %v, ports %v, veths %v", err, ports.ports, links.live)
	}
	if err := h.Leave(context.Background(), "0123456789abcdef"); err != nil {
		t.Errorf("leave of an unknown endpoint: %v", err)
	}

	ports.wait = &ovsdb.RefusedError{Interface: host, Reason: "address 10.1.0.2 held by port x"}
	if _, err := h.Join(context.Background(), ep); err == nil || !strings.Contains(err.Error(), "held by port x") {
		t.Errorf("refused join: %v", err)
	}
	ports.wait = context.DeadlineExceeded
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Join(ctx, ep); err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not install its flows in time") {
		t.Errorf("join past its deadline: %v", err)
	}
	if len(ports.ports) != 0 || len(links.live) != 0 {
		t.Errorf("failed joins left ports %v, veths %v", ports.ports, links.live)
	}
	h.cfg.Ready = func() error { return errors.New("the pipeline is not (yet) in OVS") }
	before := links.calls()
	if _, err := h.Join(context.Background(), ep); err == nil || !strings.Contains(err.Error(), "cannot install endpoints now: the pipeline is not") {
		t.Errorf("join while the agent is not ready: %v", err)
	}
	if links.calls() != before || len(ports.ports) != 0 {
		t.Errorf("join while not ready plumbed: %s, ports %v", links.calls(), ports.ports)
	}
}

// TestSweep: only the plugin's ports that OVS cannot open (ofport -1) and
// whose veth is gone are removed; a live one, one OVS has not numbered yet
// and another owner's are kept.
func TestSweep(t *testing.T) {
	ports := &fakePorts{ports: map[string]map[string]string{
		"dkhdead":  {endpoint.KeyOwner: OwnerDocker, endpoint.KeyIP: "10.1.0.7"},
		"dkhlive":  {endpoint.KeyOwner: OwnerDocker},
		"dkhnew":   {endpoint.KeyOwner: OwnerDocker},
		"attached": {endpoint.KeyOwner: "attach"},
	}, ofport: map[string]int{"dkhdead": -1, "dkhlive": 3, "dkhnew": 0, "attached": -1}}
	links := &fakeLinks{live: map[string]bool{"dkhlive": true, "dkhnew": true}}
	h, err := NewHostEndpoints(HostConfig{Ports: ports, Links: links, Network: func(string) (agentapi.Network, error) { return agentapi.Network{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := h.Sweep(context.Background())
	if err != nil || len(removed) != 1 || removed[0] != "dkhdead" {
		t.Fatalf("sweep: %v, %v", removed, err)
	}
	if _, ok := ports.ports["dkhdead"]; ok || len(ports.ports) != 3 {
		t.Fatalf("ports after the sweep: %v", ports.ports)
	}
	links.live["dkhlive"] = false // a veth gone while OVS still has an ofport: not (yet) dead
	if removed, _ := h.Sweep(context.Background()); len(removed) != 0 {
		t.Fatalf("second sweep removed %v", removed)
	}
}
