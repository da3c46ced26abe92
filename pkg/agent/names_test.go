package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// listNames renders a table as "network: name=addr,addr name=addr ...".
func listNames(t *resolver.Table) string {
	var b strings.Builder
	for _, n := range t.Networks() {
		l := t.List(n)
		if len(l) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:", n)
		for _, e := range l {
			fmt.Fprintf(&b, " %s=", e.Name)
			for i, a := range e.Addrs {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(a.String())
			}
		}
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func namesAgent(tbl *resolver.Table) *Agent {
	return &Agent{cfg: Config{NodeName: "ha", Names: tbl}, log: slog.New(slog.DiscardHandler), rejects: map[string]uint64{},
		reg: endpoint.NewRegistry(), model: newModel("ha", nil, func(string, error) {}), marks: newMarks(), waiting: map[string]string{}}
}

func rep(network, ip, host, name string) cluster.RemoteEndpoint {
	return cluster.RemoteEndpoint{Network: network, IP: netip.MustParseAddr(ip), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Host: host, Name: name}
}

// Local endpoints' names follow the registry (rename, unname, removal);
// the view's remote endpoints' names follow the views, by delta or by
// difference, this host's own records skipped; two "web" on two hosts
// are both answered.
func TestNameSources(t *testing.T) {
	tbl := resolver.NewTable()
	a := namesAgent(tbl)
	local := func(port, ip, name string) endpoint.Endpoint {
		return endpoint.Endpoint{Port: port, OFPort: 5, Network: "blue", IP: netip.MustParseAddr(ip),
			MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, Name: name}
	}
	view := func(rev int64, d *cluster.Delta, eps ...cluster.RemoteEndpoint) cluster.View {
		return cluster.View{Revision: rev, Delta: d, Endpoints: eps}
	}
	steps := []struct {
		what string
		do   func()
		want string
	}{
		{"local named", func() { a.apply(a.reg.Upsert(local("p1", "10.100.1.5", "c1"))) }, "blue: c1=10.100.1.5"},
		{"local renamed", func() { a.apply(a.reg.Upsert(local("p1", "10.100.1.5", "web"))) }, "blue: web=10.100.1.5"},
		{"first view (no delta)", func() {
			a.applyViewNames(view(7, nil, rep("blue", "10.100.1.5", "ha", "web"), rep("blue", "10.100.2.5", "hb", "web"),
				rep("blue", "10.100.2.6", "hb", "c2"), rep("blue", "10.100.2.7", "hb", ""), rep("red", "10.200.2.5", "hb", "r1")))
		}, "blue: c2=10.100.2.6 web=10.100.1.5,10.100.2.5; red: r1=10.200.2.5"},
		{"delta from the view applied", func() {
			old, renamed := rep("blue", "10.100.2.6", "hb", "c2"), rep("blue", "10.100.2.6", "hb", "c2b")
			a.applyViewNames(view(9, &cluster.Delta{From: 7, EndpointsChanged: []cluster.EndpointChange{{Old: old, New: renamed}},
				EndpointsRemoved: []cluster.RemoteEndpoint{rep("red", "10.200.2.5", "hb", "r1")}},
				rep("blue", "10.100.1.5", "ha", "web"), rep("blue", "10.100.2.5", "hb", "web"), renamed, rep("blue", "10.100.2.7", "hb", "")))
		}, "blue: c2b=10.100.2.6 web=10.100.1.5,10.100.2.5"},
		{"delta from another view: difference", func() {
			a.applyViewNames(view(12, &cluster.Delta{From: 11}, rep("blue", "10.100.1.5", "ha", "web"), rep("blue", "10.100.2.7", "hb", "c3")))
		}, "blue: c3=10.100.2.7 web=10.100.1.5"},
		{"same revision again", func() { a.applyViewNames(view(12, nil)) }, "blue: c3=10.100.2.7 web=10.100.1.5"},
		{"local unnamed", func() { a.apply(a.reg.Upsert(local("p1", "10.100.1.5", ""))) }, "blue: c3=10.100.2.7"},
		{"local named again, then removed", func() {
			a.apply(a.reg.Upsert(local("p1", "10.100.1.5", "c1")))
			a.apply(a.reg.Delete("p1"))
		}, "blue: c3=10.100.2.7"},
		{"host gone (lease expired)", func() { a.applyViewNames(view(13, nil)) }, ""},
	}
	for _, s := range steps {
		s.do()
		if got := listNames(tbl); got != s.want {
			t.Errorf("%s: names %q, want %q", s.what, got, s.want)
		}
	}
	if len(a.rejects) != 0 {
		t.Errorf("rejects: %v", a.rejects)
	}
}

// Without a table nothing is kept.
func TestNoNameTable(t *testing.T) {
	a := namesAgent(nil)
	a.cfg.Names = nil
	a.applyViewNames(cluster.View{Revision: 3, Endpoints: []cluster.RemoteEndpoint{rep("blue", "10.100.2.6", "hb", "c2")}})
	if a.names.have || a.names.view.EndpointCount() != 0 {
		t.Errorf("names kept without a table: %v", a.names.view.EndpointList())
	}
}
