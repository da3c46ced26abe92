package ovsdb

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestDirect: a Direct connection adds a port in one transaction (refused
// when the name is taken or the bridge missing), reads the datapath type,
// waits for the installed mark written by someone else (ovs-vsctl plays the
// agent), sees the interface go, and deletes only its bridge's port.
func TestDirect(t *testing.T) {
	n := testbed.NewNode(t, "direct")
	full, _ := startClient(t, n, nil)
	ctx := ctxT(t, 60*time.Second)
	if err := full.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	n.Vsctl(t, "add-br", "br-other", "--", "set", "bridge", "br-other", "datapath_type=netdev")
	n.Vsctl(t, "add-port", "br-other", "theirs0", "--", "set", "Interface", "theirs0", "type=internal")
	d, err := Dial(ctx, n.DBAddr(), "br-int", "mine0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if dp, err := d.DatapathType(ctx); err != nil || dp != "netdev" {
		t.Fatalf("DatapathType = %q, %v", dp, err)
	}
	ip := netip.MustParseAddr("10.1.0.5")
	spec := PortSpec{Name: "mine0", Type: "internal", ExternalIDs: map[string]string{endpoint.KeyIP: ip.String()}}
	if err := d.InsertPort(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := vsctlGet(t, n, "Interface", "mine0", "external_ids:"+endpoint.KeyIP); got != ip.String() {
		t.Fatalf("ovs-vsctl: mine0's ip = %q", got)
	}
	if out := n.Vsctl(t, "port-to-br", "mine0"); strings.TrimSpace(out) != "br-int" {
		t.Fatalf("mine0 is on %q", out)
	}
	for _, c := range []struct {
		name, bridge, port string
		want               error
	}{
		{"same name again", "br-int", "mine0", ErrPortExists},
		{"name taken on another bridge", "br-int", "theirs0", ErrPortExists},
		{"no such bridge", "br-none", "new0", ErrBridgeNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := Dial(ctx, n.DBAddr(), c.bridge, c.port)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if err := o.InsertPort(ctx, PortSpec{Name: c.port, Type: "internal"}); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == ErrBridgeNotFound {
				if _, err := o.DatapathType(ctx); !errors.Is(err, ErrBridgeNotFound) {
					t.Fatalf("DatapathType: got %v", err)
				}
			}
		})
	}
	if out := n.Vsctl(t, "list-ports", "br-int"); strings.Fields(out)[0] != "mine0" || len(strings.Fields(out)) != 1 {
		t.Fatalf("br-int ports after the refusals: %q", out)
	}

	waited := make(chan error, 1)
	go func() { waited <- d.WaitInstalled(ctx, "mine0", ip) }()
	select {
	case err := <-waited:
		t.Fatalf("WaitInstalled returned before the mark: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	n.Vsctl(t, "set", "Interface", "mine0", "external_ids:"+endpoint.KeyInstalled+"="+ip.String())
	if err := <-waited; err != nil {
		t.Fatalf("WaitInstalled: %v", err)
	}
	n.Vsctl(t, "set", "Interface", "mine0", "external_ids:"+endpoint.KeyError+"=bad-port")
	n.Vsctl(t, "remove", "Interface", "mine0", "external_ids", endpoint.KeyInstalled)
	// The connection learns of the two changes when the server's update
	// arrives: until then its row still carries the installed mark, and
	// WaitInstalled rightly answers from it. Ask again until it has them.
	var refused *RefusedError
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := d.WaitInstalled(ctx, "mine0", ip)
		if errors.As(err, &refused) && refused.Reason == "bad-port" {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("WaitInstalled with the agent's error: %v", err)
		}
	}

	if err := d.DeletePort(ctx, "theirs0"); !errors.Is(err, ErrPortConflict) {
		t.Fatalf("DeletePort of another bridge's port: %v", err)
	}
	if err := d.DeletePort(ctx, "mine0"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePort(ctx, "mine0"); err != nil {
		t.Fatalf("DeletePort of a missing port: %v", err)
	}
	if err := d.WaitInstalled(ctx, "mine0", ip); !errors.Is(err, ErrInterfaceGone) {
		t.Fatalf("WaitInstalled after the delete: %v", err)
	}
	if out := n.Vsctl(t, "list-ports", "br-other"); strings.TrimSpace(out) != "theirs0" {
		t.Fatalf("br-other's ports: %q", out)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := d.WaitInstalled(short, "other", ip); err == nil {
		t.Fatal("WaitInstalled of an interface it does not follow succeeded")
	}
}
