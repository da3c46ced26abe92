package attach

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// unreachableGateway makes the kernel refuse the default route: the gateway
// it passes is not on the interface's subnet.
type unreachableGateway struct{ Links }

func (u unreachableGateway) AddDefaultRoute(ns *NetNS, name string, _ netip.Addr) error {
	return u.Links.AddDefaultRoute(ns, name, netip.MustParseAddr("203.0.113.1"))
}

// fixedOffload makes the kernel refuse the offload change: it is aimed at
// the container's loopback, whose checksum features are fixed.
type fixedOffload struct{ Links }

func (f fixedOffload) SetTxChecksum(ns *NetNS, _ string, on bool) error {
	return f.Links.SetTxChecksum(ns, "lo", on)
}

// failingAdd fails AddPort, after really adding the port when lost is set
// (a committed transaction whose answer never came back).
type failingAdd struct {
	vsctlPorts
	lost bool
}

func (f failingAdd) AddPort(ctx context.Context, name string, ext map[string]string) error {
	if f.lost {
		if err := f.vsctlPorts.AddPort(ctx, name, ext); err != nil {
			return err
		}
	}
	return errors.New("injected: ovsdb transaction failed")
}

// TestIntegrationRollback fails Attach at every step against the real kernel
// and OVS and checks with ip and ovs-vsctl that nothing is left.
func TestIntegrationRollback(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c := newCtr(t, "rb")
	o := Options{Network: "blue", IP: mustPrefix("10.79.0.5/24"), Gateway: mustAddr("10.79.0.1")}
	steps := []string{"create veth", "configure container interface",
		"set container tx checksum offload", "add default route",
		"set host end up", "check container interface", "add OVS port"}
	for _, s := range steps {
		t.Run("after "+s, func(t *testing.T) {
			a := *b.a
			a.afterStep = func(step string) error {
				if step == s {
					return errors.New("injected")
				}
				return nil
			}
			b.expectRollback(t, &a, c, o, s)
		})
	}
	t.Run("kernel refuses route", func(t *testing.T) {
		a := *b.a
		a.Links = unreachableGateway{Netlink{}}
		err := b.expectRollback(t, &a, c, o, "add default route")
		if !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("want the kernel's error, got %v", err)
		}
	})
	t.Run("kernel refuses offload change", func(t *testing.T) {
		a := *b.a
		a.Links = fixedOffload{Netlink{}}
		err := b.expectRollback(t, &a, c, o, "set container tx checksum offload")
		t.Logf("the kernel's answer: %v", err)
		if !strings.Contains(err.Error(), "offload of lo ") {
			t.Errorf("want the failing interface named, got %v", err)
		}
	})
	for _, lost := range []bool{false, true} {
		a := *b.a
		a.Ports = failingAdd{b.ports, lost}
		b.expectRollback(t, &a, c, o, "add OVS port")
	}
	t.Run("invalid gateway", func(t *testing.T) {
		bad := o
		bad.Gateway = mustAddr("10.80.0.1")
		if _, err := b.a.Attach(ctx, c, bad); !errors.As(err, new(*OptionError)) {
			t.Fatalf("got %v, want an OptionError", err)
		}
		b.assertClean(t, c)
	})
	// After all that, the same attach works.
	if _, err := b.a.Attach(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	b.assertAttached(t, c, nsOf(c), "eth1", "10.79.0.5/24", "0a:58:0a:4f:00:05", "10.79.0.1", 1450)
}

func (b *bed) expectRollback(t *testing.T, a *Attacher, c Container, o Options, step string) error {
	t.Helper()
	_, err := a.Attach(context.Background(), c, o)
	var se *StepError
	if !errors.As(err, &se) || se.Step != step || se.Rollback != nil {
		t.Fatalf("got %v, want a cleanly rolled back failure at %q", err, step)
	}
	b.assertClean(t, c)
	return err
}

// TestIntegrationIncomplete covers a port whose veth vanished with its
// container: attach says so, detach cleans it up.
func TestIntegrationIncomplete(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c := newCtr(t, "inc")
	o := Options{Network: "blue", IP: mustPrefix("10.81.0.5/24")}
	if _, err := b.a.Attach(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	host := HostIfName(c.ID, "eth1")
	mustCmd(t, "ip", "-n", nsOf(c), "link", "del", "eth1") // takes the host end with it
	if _, err := b.a.Attach(ctx, c, o); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
	if !strings.Contains(b.node.Vsctl(t, "list-ports", bridge), host) {
		t.Fatal("setup: port should still be on the bridge")
	}
	if err := b.a.Detach(ctx, c.ID, "eth1"); err != nil {
		t.Fatal(err)
	}
	b.assertClean(t, c)
}
