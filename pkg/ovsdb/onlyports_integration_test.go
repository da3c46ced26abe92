package ovsdb

import (
	"slices"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestOnlyPorts: a client with OnlyPorts sees the bridge and the named
// ports alone (ovs-vsctl made the others), adds and deletes a named port
// and waits for its installed mark like a full client.
func TestOnlyPorts(t *testing.T) {
	n := testbed.NewNode(t, "only")
	full, _ := startClient(t, n, nil)
	ctx := ctxT(t, 60*time.Second)
	if err := full.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"other0", "other1"} {
		n.Vsctl(t, "add-port", "br-int", p, "--", "set", "Interface", p, "type=internal")
	}
	c, _ := startClient(t, n, func(cfg *Config) { cfg.OnlyPorts = []string{"mine0"} })
	names := func() []string {
		var out []string
		for _, i := range c.Interfaces() {
			out = append(out, i.Name)
		}
		slices.Sort(out)
		return out
	}
	testbed.Eventually(t, 20*time.Second, func() bool { return slices.Equal(names(), []string{"br-int"}) },
		"view %v, want the bridge's own interface alone", names())
	if err := c.AddPort(ctx, PortSpec{Name: "mine0", Type: "internal", ExternalIDs: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 20*time.Second, func() bool { return slices.Equal(names(), []string{"br-int", "mine0"}) },
		"view %v after adding mine0", names())
	if got := vsctlGet(t, n, "Interface", "mine0", "external_ids:k"); got != "v" {
		t.Fatalf("ovs-vsctl: mine0 external_ids:k = %q", got)
	}
	// The ports it does not see are untouched (ovs-vsctl as the observer).
	if out := n.Vsctl(t, "list-ports", "br-int"); out != "mine0\nother0\nother1\n" && out != "mine0\nother0\nother1" {
		t.Fatalf("ports after AddPort: %q", out)
	}
	if err := c.DeletePort(ctx, "mine0"); err != nil {
		t.Fatal(err)
	}
	if out := n.Vsctl(t, "list-ports", "br-int"); out != "other0\nother1\n" && out != "other0\nother1" {
		t.Fatalf("ports after DeletePort: %q", out)
	}
}
