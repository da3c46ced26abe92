package netfilter

import (
	"net/netip"
	"testing"
)

// Isolation through the host. Each negative check has a positive control
// on the same path and reads the drop rule's counter with nft, so a probe
// that never reached the host cannot pass for a drop.
func TestIsolation(t *testing.T) {
	b := newBed(t)
	blue, red := b.ctrs["blue1"], b.ctrs["red1"]
	serveHTTP(t, blue.ns, ":80", "blue1", nil)
	k := b.keeper(t)
	s := baseState()
	s.Blocked = []netip.Prefix{netip.MustParsePrefix(outsideIP2 + "/32"), netip.MustParsePrefix(hostAddr + "/32")}
	s.Publishes = []Publish{publishBlue("blue1", TCP, 8080, 80)}
	apply(t, k, s)

	// Control: blue reaches the outside through its gateway.
	if ok, out := ping(blue.ns, outsideIP, 2); !ok {
		t.Fatalf("control: blue -> outside failed:\n%s", out)
	}
	t.Run("blue to red through the gateways", func(t *testing.T) {
		before := b.ruleCounter(t, "to-red", "unsolicited")
		if ok, out := ping(blue.ns, red.ip.String(), 2); ok {
			t.Fatalf("blue reached red:\n%s", out)
		}
		if n := b.ruleCounter(t, "to-red", "unsolicited") - before; n != 2 {
			t.Fatalf("to-red dropped %d packets of 2 pings", n)
		}
		before = b.ruleCounter(t, "to-blue", "unsolicited")
		if ok, out := ping(red.ns, blue.ip.String(), 1); ok {
			t.Fatalf("red reached blue:\n%s", out)
		}
		if n := b.ruleCounter(t, "to-blue", "unsolicited") - before; n != 1 {
			t.Fatalf("to-blue dropped %d packets of 1 ping", n)
		}
	})
	t.Run("blocked address", func(t *testing.T) {
		if ok, out := ping(b.outside, outsideIP2, 1); !ok { // the address exists and answers
			t.Fatalf("control: %s does not answer in the outside:\n%s", outsideIP2, out)
		}
		before := b.ruleCounter(t, "from-blue", "blocked")
		if ok, out := ping(blue.ns, outsideIP2, 2); ok {
			t.Fatalf("blue reached blocked %s:\n%s", outsideIP2, out)
		}
		if n := b.ruleCounter(t, "from-blue", "blocked") - before; n != 2 {
			t.Fatalf("from-blue dropped %d packets of 2 pings to a blocked address", n)
		}
	})
	t.Run("blocked host address, gateway address allowed", func(t *testing.T) {
		if ok, out := ping(blue.ns, "10.100.0.1", 1); !ok {
			t.Fatalf("blue cannot reach its gateway address:\n%s", out)
		}
		before := b.ruleCounter(t, "input", "blocked blue")
		if ok, out := ping(blue.ns, hostAddr, 2); ok {
			t.Fatalf("blue reached the host's blocked address %s:\n%s", hostAddr, out)
		}
		if n := b.ruleCounter(t, "input", "blocked blue") - before; n != 2 {
			t.Fatalf("input dropped %d packets of 2 pings to the host's blocked address", n)
		}
		// A published port on that address still answers (it is DNATed
		// before the input hook: the container is reached, not the host).
		if out, err := curl(red.ns, "http://"+hostAddr+":8080/"); err != nil || out != "hello from blue1" {
			t.Fatalf("published port on a blocked host address: %q, %v", out, err)
		}
	})
	t.Run("unsolicited from outside", func(t *testing.T) {
		// The outside learns a route to blue's subnet through the host:
		// only the published port may come in.
		b.outside.MustExec(t, "ip", "route", "add", blueNet.Subnet.String(), "via", hostAddr)
		if out, err := curl(b.outside, "http://"+hostAddr+":8080/"); err != nil || out != "hello from blue1" {
			t.Fatalf("control: published port from outside: %q, %v", out, err)
		}
		before := b.ruleCounter(t, "to-blue", "unsolicited")
		if out, err := curl(b.outside, "http://"+blue.ip.String()+":80/", "--max-time", "1"); err == nil {
			t.Fatalf("the outside reached blue's unpublished port directly: %s", out)
		}
		if n := b.ruleCounter(t, "to-blue", "unsolicited") - before; n < 1 {
			t.Fatalf("to-blue dropped %d packets of a direct connection", n)
		}
	})
	t.Run("spoofed source", func(t *testing.T) {
		blue.ns.MustExec(t, "ip", "addr", "add", "10.99.0.5/32", "dev", "eth0")
		before := b.ruleCounter(t, "from-blue", "spoofed")
		if out, err := blue.ns.Exec("ping", "-n", "-q", "-c", "2", "-i", "0.1", "-W", "1", "-I", "10.99.0.5", outsideIP); err == nil {
			t.Fatalf("a spoofed source reached the outside:\n%s", out)
		}
		if n := b.ruleCounter(t, "from-blue", "spoofed") - before; n != 2 {
			t.Fatalf("from-blue dropped %d spoofed packets of 2", n)
		}
	})
	c, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Networks {
		t.Logf("%s: dropped %v", n.Network, n.Dropped)
	}
}
