package etcd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

func putNamedEP(network, ip, host, mac, name string, create int64) op {
	return op{tk.endpoint(network, netip.MustParseAddr(ip), host),
		fmt.Sprintf(`{"version":1,"mac":%q,"name":%q}`, mac, name), create}
}

// names renders the view's endpoints as "network ip host name".
func names(v cluster.View) []string {
	var out []string
	for _, e := range v.EndpointList() {
		out = append(out, fmt.Sprintf("%s %s %s %s", e.Network, e.IP, e.Host, e.Name))
	}
	return out
}

// Endpoint records carry the endpoint's DNS name: the view shows it, a
// rename is a change of the endpoint (in the delta), a record without one
// (written before names existed) stays valid, and an invalid name refuses
// the record like a bad MAC.
func TestEndpointNames(t *testing.T) {
	var rep reports
	x := newIndex(tk, nil, rep.add)
	apply(x, base()...)
	apply(x,
		putNamedEP("blue", "10.100.0.5", "ha", "02:00:00:00:00:05", "c1", 10),
		putEP("blue", "10.100.0.6", "hb", "02:00:00:00:00:06", 11), // no name: valid
		putNamedEP("blue", "10.100.0.7", "hb", "02:00:00:00:00:07", "web", 12),
		putNamedEP("red", "10.200.0.7", "hc", "02:00:00:00:00:07", "web", 13),
	)
	want := []string{"blue 10.100.0.5 ha c1", "blue 10.100.0.6 hb ", "blue 10.100.0.7 hb web", "red 10.200.0.7 hc web"}
	if got := names(x.view(1)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("view = %q, want %q", got, want)
	}
	if len(rep) != 0 {
		t.Fatalf("reports: %q", rep)
	}

	tests := []struct {
		name    string
		op      op
		changed []string // the delta's changed endpoints, "old -> new" names
		added   int
		removed int
		reports int // etcd-record reports
	}{
		{"rename", putNamedEP("blue", "10.100.0.5", "ha", "02:00:00:00:00:05", "c1b", 10), []string{"c1 -> c1b"}, 0, 0, 0},
		{"name given", putNamedEP("blue", "10.100.0.6", "hb", "02:00:00:00:00:06", "c2", 11), []string{" -> c2"}, 0, 0, 0},
		{"name dropped", putEP("blue", "10.100.0.7", "hb", "02:00:00:00:00:07", 12), []string{"web -> "}, 0, 0, 0},
		{"invalid name", putNamedEP("red", "10.200.0.7", "hc", "02:00:00:00:00:07", "web_1", 13), nil, 0, 1, 1},
		{"valid again", putNamedEP("red", "10.200.0.7", "hc", "02:00:00:00:00:07", "WEB", 13), nil, 1, 0, 1},
		{"same name again", putNamedEP("red", "10.200.0.7", "hc", "02:00:00:00:00:07", "WEB", 13), nil, 0, 0, 1},
	}
	for _, tt := range tests {
		apply(x, tt.op)
		var changed []string
		for _, c := range x.delta.EndpointsChanged {
			changed = append(changed, c.Old.Name+" -> "+c.New.Name)
		}
		if fmt.Sprint(changed) != fmt.Sprint(tt.changed) || len(x.delta.EndpointsAdded) != tt.added ||
			len(x.delta.EndpointsRemoved) != tt.removed || rep.count(KindRecord) != tt.reports {
			t.Errorf("%s: changed %q added %d removed %d reports %q; want %q, %d, %d, %d reports", tt.name, changed,
				len(x.delta.EndpointsAdded), len(x.delta.EndpointsRemoved), rep, tt.changed, tt.added, tt.removed, tt.reports)
		}
	}
	want = []string{"blue 10.100.0.5 ha c1b", "blue 10.100.0.6 hb c2", "blue 10.100.0.7 hb ", "red 10.200.0.7 hc WEB"}
	if got := names(x.view(2)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("view = %q, want %q", got, want)
	}
}

func TestEncodeNamedEndpoint(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, tt := range []struct{ name, want string }{
		{"", `{"version":1,"mac":"02:00:00:00:00:01"}`},
		{"c2", `{"version":1,"mac":"02:00:00:00:00:01","name":"c2"}`},
	} {
		got := EncodeNamedEndpoint(mac, tt.name)
		if string(got) != tt.want {
			t.Errorf("EncodeNamedEndpoint(%q) = %s, want %s", tt.name, got, tt.want)
		}
		m, n, err := parseEndpoint("k", got)
		if err != nil || [6]byte(mac) != m || n != tt.name {
			t.Errorf("parseEndpoint(%s) = %v %q %v", got, m, n, err)
		}
	}
}

// The publisher writes an endpoint's name in its record, under the host's
// lease, and rewrites the record when the name changes or goes.
func TestPublisherWritesNames(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	ip := netip.MustParseAddr("10.100.0.1")
	key := tk.endpoint("blue", ip, "ha")
	value := func() (string, int64) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := c.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			return fmt.Sprint(err), 0
		}
		return string(resp.Kvs[0].Value), resp.Kvs[0].Lease
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, name := range []string{"c1", "c1b", ""} {
		pub.PublishEndpoints([]endpoint.Endpoint{{Network: "blue", IP: ip, MAC: mac, Name: name}})
		want := string(EncodeNamedEndpoint(mac, name))
		eventually(t, 5*time.Second, func() bool { v, _ := value(); return v == want }, "record of %q: %s", name, want)
		hostLease := keysOf(t, c)[tk.host("ha")]
		if _, lease := value(); lease == 0 || lease != hostLease {
			t.Errorf("name %q: record lease %x, host record's %x", name, lease, hostLease)
		}
	}
}
