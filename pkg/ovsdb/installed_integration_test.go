package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The agent's side (SetExternalIDs) and a port writer's (WaitInstalled) on
// two clients of one real ovsdb-server, checked with ovs-vsctl.
func TestInstalledSignal(t *testing.T) {
	n := testbed.NewNode(t, "mark")
	agent, _ := startClient(t, n, nil)
	waiter, _ := startClient(t, n, nil)
	ctx := ctxT(t, 60*time.Second)
	if err := agent.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 5*time.Second, func() bool { return uuidOf(waiter, "br-int") != "" }, "the port writer never saw the bridge")
	ip := netip.MustParseAddr("10.0.0.5")
	ids := map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: ip.String()}
	addPort := func(t *testing.T, name string) string {
		t.Helper()
		if err := waiter.AddPort(ctx, PortSpec{Name: name, Type: "internal", ExternalIDs: ids}); err != nil {
			t.Fatal(err)
		}
		var uuid string
		testbed.Eventually(t, 5*time.Second, func() bool {
			uuid = uuidOf(agent, name)
			return uuid != "" && uuidOf(waiter, name) != "" // both caches hold it
		}, "%s never seen", name)
		return uuid
	}
	var lastSub *Subscription
	wait := func(name string) chan error { // WaitInstalled, subscribed before it returns
		done := make(chan error, 1)
		sub := waiter.Subscribe()
		lastSub = sub
		go func() { defer sub.Close(); done <- watchInstalled(ctx, sub, name, ip) }()
		return done
	}
	result := func(t *testing.T, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("WaitInstalled did not return")
			return nil
		}
	}

	t.Run("installed", func(t *testing.T) {
		uuid := addPort(t, "ep0")
		done := wait("ep0")
		agent.SetExternalIDs(uuid, endpoint.Status{Installed: ip.String()}.ExternalIDs())
		if err := result(t, done); err != nil {
			t.Fatal(err)
		}
		if got := vsctlGet(t, n, "Interface", "ep0", "external_ids:"+endpoint.KeyInstalled); got != ip.String() {
			t.Fatalf("ovs-vsctl: installed %q", got)
		}
		if got := vsctlGet(t, n, "Interface", "ep0", "external_ids:"+endpoint.KeyNetwork); got != "blue" {
			t.Fatalf("other keys changed: network %q", got)
		}
		// The port writer's idempotent AddPort keeps the agent's keys.
		if err := waiter.AddPort(ctx, PortSpec{Name: "ep0", Type: "internal", ExternalIDs: ids}); err != nil {
			t.Fatal(err)
		}
		if got := vsctlGet(t, n, "Interface", "ep0", "external_ids:"+endpoint.KeyInstalled); got != ip.String() {
			t.Fatalf("AddPort dropped the mark: %q", got)
		}
		// Withdrawn: the key is removed.
		agent.SetExternalIDs(uuid, endpoint.Status{}.ExternalIDs())
		testbed.Eventually(t, 5*time.Second, func() bool {
			return !strings.Contains(n.Vsctl(t, "get", "Interface", "ep0", "external_ids"), endpoint.KeyInstalled)
		}, "mark never removed")
	})
	t.Run("refused", func(t *testing.T) {
		uuid := addPort(t, "ep1")
		done := wait("ep1")
		agent.SetExternalIDs(uuid, endpoint.Status{Error: "ip 10.0.0.5 in network blue is already held by interface ep0"}.ExternalIDs())
		var re *RefusedError
		if err := result(t, done); !errors.As(err, &re) || re.Reason != "ip 10.0.0.5 in network blue is already held by interface ep0" {
			t.Fatalf("got %v, want the agent's reason", err)
		}
	})
	t.Run("gone", func(t *testing.T) {
		addPort(t, "ep2")
		done := wait("ep2")
		// The queue keeps one event per interface: a delete made before the
		// snapshot leaves the queue would merge with its add into nothing.
		testbed.Eventually(t, 5*time.Second, func() bool { n, _ := lastSub.queued(); return n == 0 }, "the snapshot never left the queue")
		if err := agent.DeletePort(ctx, "ep2"); err != nil {
			t.Fatal(err)
		}
		if err := result(t, done); !errors.Is(err, ErrInterfaceGone) {
			t.Fatalf("got %v, want ErrInterfaceGone", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		addPort(t, "ep3")
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := waiter.WaitInstalled(short, "ep3", ip); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the context's deadline", err)
		}
	})
}

// Thousands of rows are written in batches; rows that already hold the
// wanted values are not written again.
func TestSetExternalIDsBatches(t *testing.T) {
	n := testbed.NewNode(t, "batch")
	c, _ := startClient(t, n, nil)
	ctx := ctxT(t, 120*time.Second)
	if err := c.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	const rows = 2500
	args := []string{}
	for i := range rows { // rows only: vswitchd cannot open these devices, which does not matter here
		args = append(args, "--", "add-port", "br-int", fmt.Sprintf("p%d", i))
	}
	n.Vsctl(t, args...)
	var uuids []string
	testbed.Eventually(t, 20*time.Second, func() bool {
		uuids = uuids[:0]
		for _, i := range c.Interfaces() {
			if strings.HasPrefix(i.Name, "p") {
				uuids = append(uuids, i.UUID)
			}
		}
		return len(uuids) == rows
	}, "the client never saw %d ports", rows)
	mark := endpoint.Status{Installed: "10.0.0.1"}.ExternalIDs()
	start := time.Now()
	for _, u := range uuids {
		c.SetExternalIDs(u, mark)
	}
	marked := func() int {
		return strings.Count(n.Vsctl(t, "--columns=name", "find", "Interface", "external_ids:"+endpoint.KeyInstalled+"=10.0.0.1"), "name")
	}
	testbed.Eventually(t, 30*time.Second, func() bool { return marked() == rows }, "marked %d of %d", marked(), rows)
	t.Logf("%d rows marked in %v (seen with ovs-vsctl)", rows, time.Since(start))
	// The writer counts a batch once its transaction's answer is back,
	// which may be after ovs-vsctl sees the rows.
	writes := func(want uint64) {
		t.Helper()
		testbed.Eventually(t, 5*time.Second, func() bool { return c.Stats().IDWrites >= want }, "%d rows written, want %d", c.Stats().IDWrites, want)
		if w := c.Stats().IDWrites; w != want {
			t.Fatalf("%d rows written, want %d", w, want)
		}
	}
	writes(rows)
	// The same again, and one row changed: only that row is written.
	for _, u := range uuids {
		c.SetExternalIDs(u, mark)
	}
	c.SetExternalIDs(uuids[0], endpoint.Status{Error: "x"}.ExternalIDs())
	testbed.Eventually(t, 10*time.Second, func() bool { return marked() == rows-1 }, "the changed row was never written")
	writes(rows + 1) // unchanged rows are not written again
}

func uuidOf(c *Client, name string) string {
	for _, i := range c.Interfaces() {
		if i.Name == name {
			return i.UUID
		}
	}
	return ""
}

func TestInstalledYet(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	cases := []struct {
		name      string
		ext       map[string]string
		done, err bool
	}{
		{"nothing yet", map[string]string{endpoint.KeyIP: "10.0.0.5"}, false, false},
		{"installed", map[string]string{endpoint.KeyIP: "10.0.0.5", endpoint.KeyInstalled: "10.0.0.5"}, true, false},
		{"stale mark of an old address", map[string]string{endpoint.KeyIP: "10.0.0.5", endpoint.KeyInstalled: "10.0.0.4"}, false, false},
		{"mark for the address, port claims another", map[string]string{endpoint.KeyIP: "10.0.0.6", endpoint.KeyInstalled: "10.0.0.5"}, false, false},
		{"refused", map[string]string{endpoint.KeyIP: "10.0.0.5", endpoint.KeyError: "conflict"}, true, true},
	}
	for _, c := range cases {
		done, err := installedYet("p", ip, c.ext)
		if done != c.done || (err != nil) != c.err {
			t.Errorf("%s: done %v err %v", c.name, done, err)
		}
	}
}
