package ovsdb

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
	"github.com/ovn-org/libovsdb/client"
)

// TestDeltaMatchesFullRead changes ports, interfaces and bridges out of
// band and checks the incrementally kept interface set against a full read.
func TestDeltaMatchesFullRead(t *testing.T) {
	n := testbed.NewNode(t, "delta")
	c, _ := startClient(t, n, nil)
	ctx := ctxT(t, 60*time.Second)
	if err := c.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	rec := record(c.Subscribe())
	n.AddBridge(t, "br-other")
	steps := []struct {
		name  string
		vsctl []string
		want  func(InterfaceEvent) bool
	}{
		{"bond added", []string{"add-bond", "br-int", "bond0", "ba", "bb"}, func(ev InterfaceEvent) bool {
			return ev.Kind == Added && ev.Interface.Name == "bb" && ev.Interface.Port == "bond0"
		}},
		{"port on another bridge", []string{"add-port", "br-other", "x0", "--", "add-port", "br-int", "y0"},
			named(Added, "y0")},
		{"interface changed", []string{"set", "Interface", "ba", "external_ids:k=v"}, func(ev InterfaceEvent) bool {
			return ev.Kind == Updated && ev.Interface.Name == "ba" && ev.Interface.ExternalIDs["k"] == "v"
		}},
		{"bond member removed", []string{"del-bond-iface", "bond0", "bb"}, named(Deleted, "bb")},
		{"port replaced", []string{"del-port", "y0", "--", "add-port", "br-int", "y0"}, named(Added, "y0")},
		{"port moved to another bridge", []string{"remove", "Bridge", "br-int", "ports", "@y0", "--",
			"add", "Bridge", "br-other", "ports", "@y0"}, named(Deleted, "y0")},
		{"bond removed", []string{"del-port", "bond0"}, named(Deleted, "ba")},
	}
	at := 0
	for _, s := range steps {
		if slices.Contains(s.vsctl, "@y0") {
			uuid := strings.TrimSpace(n.Vsctl(t, "get", "Port", "y0", "_uuid"))
			s.vsctl = slices.Clone(s.vsctl)
			for i, a := range s.vsctl {
				if a == "@y0" {
					s.vsctl[i] = uuid
				}
			}
		}
		n.Vsctl(t, append([]string{"--no-wait"}, s.vsctl...)...)
		_, at = rec.wait(t, at, s.name, s.want)
		assertFullRead(t, c)
	}
	for _, ev := range rec.events() {
		if ev.Interface.Name == "x0" || ev.Kind == Added && ev.Interface.Name == "bb" && ev.Interface.Port != "bond0" {
			t.Errorf("event for a port on another bridge: %+v", ev)
		}
	}
}

// assertFullRead compares Interfaces with the set computed from every row.
func assertFullRead(t *testing.T, c *Client) {
	t.Helper()
	var want []Interface
	testbed.Eventually(t, 5*time.Second, func() bool {
		err := c.withConn(ctxT(t, 5*time.Second), func(cl client.Client) error {
			r, err := readAll(ctxT(t, 5*time.Second), cl)
			want = nil
			for _, i := range bridgeInterfaces(&r, c.cfg.Bridge.Name) {
				want = append(want, i)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got := c.Interfaces()
		return slices.EqualFunc(sortedIfaces(want), got, Interface.equal)
	}, "interfaces as a full read sees them: %+v", want)
}

func sortedIfaces(in []Interface) []Interface {
	slices.SortFunc(in, func(a, b Interface) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.UUID, b.UUID))
	})
	return in
}
