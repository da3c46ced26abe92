package attach

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
)

// fakeAlloc hands out the addresses of next in order, records calls in the
// journal, and holds what it gave until released.
type fakeAlloc struct {
	j    *journal
	next []netip.Prefix
	held map[netip.Addr]string // address -> container/ifname
}

func (f *fakeAlloc) Allocate(_ context.Context, r AllocRequest) (netip.Prefix, error) {
	if err := f.j.call("Allocate", fmt.Sprintf("%s %s/%s %s", r.Network, r.ContainerID, r.IfName, r.IP)); err != nil {
		return netip.Prefix{}, err
	}
	if r.IP.IsValid() {
		f.held[r.IP.Addr()] = r.ContainerID + "/" + r.IfName
		return r.IP, nil
	}
	if len(f.next) == 0 {
		return netip.Prefix{}, fmt.Errorf("%w in %s", agentapi.ErrExhausted, r.Network)
	}
	p := f.next[0]
	f.next = f.next[1:]
	f.held[p.Addr()] = r.ContainerID + "/" + r.IfName
	return p, nil
}

func (f *fakeAlloc) Release(_ context.Context, r AllocRequest, ip netip.Addr) error {
	delete(f.held, ip)
	return f.j.call("Release", fmt.Sprintf("%s %s/%s %s", r.Network, r.ContainerID, r.IfName, ip))
}

// agentBackend is an agent that holds one address per owner and records
// the owners it saw.
type agentBackend struct {
	owners  []string
	release []string
}

func (b *agentBackend) Status() agentapi.Status { return agentapi.Status{Ready: true} }
func (b *agentBackend) Network(string) (agentapi.Network, error) {
	return agentapi.Network{}, nil
}
func (b *agentBackend) Allocate(_ context.Context, r agentapi.AllocateRequest) (agentapi.Allocation, error) {
	b.owners = append(b.owners, r.Owner)
	switch {
	case r.IP == netip.MustParseAddr("10.1.0.9"):
		return agentapi.Allocation{}, fmt.Errorf("%w: 10.1.0.9 is held by port x", agentapi.ErrAddressTaken)
	case r.IP == netip.MustParseAddr("10.1.0.8"): // a broken agent: another address than asked for
		return agentapi.Allocation{Address: netip.MustParsePrefix("10.1.0.7/16")}, nil
	case r.IP.IsValid():
		return agentapi.Allocation{Address: netip.PrefixFrom(r.IP, 16)}, nil
	}
	return agentapi.Allocation{Address: netip.MustParsePrefix("10.1.0.2/16")}, nil
}
func (b *agentBackend) Release(_ context.Context, r agentapi.ReleaseRequest) error {
	b.release = append(b.release, r.Owner+" "+r.IP.String())
	return nil
}
func (b *agentBackend) Allocations(context.Context, string, string) ([]agentapi.Allocated, error) {
	return nil, nil
}

// TestAgentAllocator: owners name the interface, the agent's answer and
// errors come through, an answer for another address than asked is refused.
func TestAgentAllocator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b := &agentBackend{}
	srv := &http.Server{Handler: agentapi.Handler(b, agentapi.HandlerOptions{}), ReadHeaderTimeout: time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	a := &AgentAllocator{Client: agentapi.NewClient(path), Kind: "cni"}
	r := AllocRequest{Network: "blue", ContainerID: "abc", IfName: "eth0"}
	if got, err := a.Allocate(ctx, r); err != nil || got != netip.MustParsePrefix("10.1.0.2/16") {
		t.Fatalf("allocate: %v, %v", got, err)
	}
	r.IP = netip.MustParsePrefix("10.1.0.5/16")
	if got, err := a.Allocate(ctx, r); err != nil || got != r.IP {
		t.Fatalf("allocate %s: %v, %v", r.IP, got, err)
	}
	r.IP = netip.MustParsePrefix("10.1.0.9/16")
	if _, err := a.Allocate(ctx, r); !errors.Is(err, agentapi.ErrAddressTaken) {
		t.Fatalf("held address: %v", err)
	}
	r.IP = netip.MustParsePrefix("10.1.0.8/16")
	if _, err := a.Allocate(ctx, r); err == nil {
		t.Fatal("an answer with another address than asked for was taken")
	}
	if err := a.Release(ctx, r, netip.MustParseAddr("10.1.0.5")); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.owners) != "[cni:abc/eth0 cni:abc/eth0 cni:abc/eth0 cni:abc/eth0]" || fmt.Sprint(b.release) != "[cni:abc/eth0 10.1.0.5]" {
		t.Fatalf("owners %v, releases %v", b.owners, b.release)
	}
	dead := &AgentAllocator{Client: agentapi.NewClient(filepath.Join(t.TempDir(), "none.sock")), Kind: "attach"}
	if _, err := dead.Allocate(ctx, r); !errors.Is(err, agentapi.ErrUnreachable) {
		t.Fatalf("no agent: %v", err)
	}
}
