package attach

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// fakeOVSDB is the ovsdbClient seam: a view that tests change over time.
type fakeOVSDB struct {
	mu       sync.Mutex
	ifaces   []ovsdb.Interface
	stats    ovsdb.Stats
	added    []ovsdb.PortSpec
	delete   []string
	datapath string
}

func (f *fakeOVSDB) AddPort(_ context.Context, spec ovsdb.PortSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, spec)
	return nil
}

func (f *fakeOVSDB) DeletePort(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delete = append(f.delete, name)
	return nil
}

func (f *fakeOVSDB) Interfaces() []ovsdb.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ovsdb.Interface(nil), f.ifaces...)
}

func (f *fakeOVSDB) DatapathType(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.datapath, nil
}

func (f *fakeOVSDB) WaitInstalled(context.Context, string, netip.Addr) error { return nil }

func (f *fakeOVSDB) Stats() ovsdb.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeOVSDB) set(connected bool, ifaces ...ovsdb.Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Connected, f.ifaces = connected, ifaces
}

var localIface = ovsdb.Interface{Name: "br-int", Port: "br-int", Type: "internal", OFPort: 65534}

func TestOVSPortsPassThrough(t *testing.T) {
	f := &fakeOVSDB{}
	p := &OVSPorts{Client: f, Bridge: "br-int"}
	ids := map[string]string{"a": "b"}
	if err := p.AddPort(context.Background(), "of1_l", ids); err != nil {
		t.Fatal(err)
	}
	if err := p.DeletePort(context.Background(), "of2_l"); err != nil {
		t.Fatal(err)
	}
	if len(f.added) != 1 || f.added[0].Name != "of1_l" || f.added[0].Type != "" || !maps.Equal(f.added[0].ExternalIDs, ids) {
		t.Errorf("AddPort sent %+v", f.added)
	}
	if !reflect.DeepEqual(f.delete, []string{"of2_l"}) {
		t.Errorf("DeletePort sent %v", f.delete)
	}
	f.set(true, localIface,
		ovsdb.Interface{Name: "bond0a", Port: "bond0"}, ovsdb.Interface{Name: "bond0b", Port: "bond0"},
		ovsdb.Interface{Name: "of3_l", Port: "of3_l", ExternalIDs: map[string]string{"container_id": "x"}})
	got, err := p.Ports(context.Background())
	want := []Port{{Name: "br-int"}, {Name: "bond0"}, {Name: "of3_l", ExternalIDs: map[string]string{"container_id": "x"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Ports = %+v, %v; want %+v", got, err, want)
	}
	f.datapath = "netdev"
	if dp, err := p.DatapathType(context.Background()); err != nil || dp != "netdev" {
		t.Errorf("DatapathType = %q, %v", dp, err)
	}
}

func TestOVSPortsReady(t *testing.T) {
	tests := []struct {
		name    string
		later   func(f *fakeOVSDB) // runs after 30ms
		wantErr error
	}{
		{"bridge appears", func(f *fakeOVSDB) { f.set(true, localIface) }, nil},
		{"connected, no bridge", func(f *fakeOVSDB) { f.set(true, ovsdb.Interface{Name: "x", Port: "x"}) }, ovsdb.ErrBridgeNotFound},
		{"never connected", func(*fakeOVSDB) {}, ovsdb.ErrNotConnected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOVSDB{}
			p := &OVSPorts{Client: f, Bridge: "br-int", Poll: time.Millisecond}
			time.AfterFunc(30*time.Millisecond, func() { tc.later(f) })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			err := p.Ready(ctx, 100*time.Millisecond)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Ready = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == ovsdb.ErrBridgeNotFound && time.Since(start) > time.Second {
				t.Errorf("missing bridge reported after %v, want after the 100ms grace", time.Since(start))
			}
		})
	}
}

func TestOVSPortsOFPort(t *testing.T) {
	tests := []struct {
		name    string
		iface   ovsdb.Interface
		want    int
		wantErr error
	}{
		{"assigned", ovsdb.Interface{Name: "of1_l", Port: "of1_l", OFPort: 7}, 7, nil},
		{"unusable", ovsdb.Interface{Name: "of1_l", Port: "of1_l", OFPort: -1, Error: "could not open network device of1_l (No such device)"}, 0, ErrPortUnusable},
		{"never assigned", ovsdb.Interface{Name: "of1_l", Port: "of1_l"}, 0, context.DeadlineExceeded},
		{"never seen", ovsdb.Interface{Name: "other", Port: "other", OFPort: 3}, 0, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOVSDB{}
			f.set(true, localIface)
			p := &OVSPorts{Client: f, Bridge: "br-int", Poll: time.Millisecond}
			time.AfterFunc(20*time.Millisecond, func() { f.set(true, localIface, tc.iface) })
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			got, err := p.OFPort(ctx, "of1_l")
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("OFPort = %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
