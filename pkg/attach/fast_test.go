package attach

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

func newInsertingRig() (*rig, *insertingPorts) {
	r := newRig()
	ip := &insertingPorts{fakePorts: r.ports}
	r.a.Ports = ip
	return r, ip
}

// TestAttachNew: with a PortInserter a new interface is plumbed and its
// port inserted without reading the bridge (TX offload, which asks OVS for
// the datapath type, decided last); failures roll back as before.
func TestAttachNew(t *testing.T) {
	host := HostIfName("c1", "eth1")
	cases := []struct {
		name      string
		failCall  string
		lost      bool   // the failed insert took effect
		want      string // methods called, in order
		wantPorts int
	}{
		{"new", "", false, "AddVeth,Configure,AddDefaultRoute,SetUp,SetTxChecksum,InsertPort", 1},
		{"create veth fails", "AddVeth", false, "AddVeth", 0},
		{"route fails", "AddDefaultRoute", false, "AddVeth,Configure,AddDefaultRoute,DeleteVeth", 0},
		{"tx offload fails", "SetTxChecksum", false, "AddVeth,Configure,AddDefaultRoute,SetUp,SetTxChecksum,DeleteVeth", 0},
		{"insert fails", "InsertPort", false, "AddVeth,Configure,AddDefaultRoute,SetUp,SetTxChecksum,InsertPort,DeletePort,DeleteVeth", 0},
		{"insert's answer lost", "InsertPort", true, "AddVeth,Configure,AddDefaultRoute,SetUp,SetTxChecksum,InsertPort,DeletePort,DeleteVeth", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ip := newInsertingRig()
			ip.addTakesEffect = c.lost
			if c.failCall != "" {
				r.j.fail[c.failCall] = errBoom
			}
			att, err := r.a.Attach(context.Background(), r.c, opts())
			if got := methods(r.j.calls); got != c.want {
				t.Errorf("calls %s\nwant  %s", got, c.want)
			}
			if ip.reads != 0 {
				t.Errorf("the bridge was read %d times", ip.reads)
			}
			if len(r.ports.ports) != c.wantPorts {
				t.Errorf("ports %v", r.ports.ports)
			}
			if c.failCall != "" {
				var se *StepError
				if !errors.As(err, &se) || !errors.Is(err, errBoom) || se.Rollback != nil {
					t.Fatalf("got %v, want a StepError wrapping boom with a clean rollback", err)
				}
				if n := r.links.names(); len(n) != 0 {
					t.Errorf("left behind: links %v", n)
				}
				return
			}
			if err != nil || !att.Created || att.Port != host || att.TxChecksum != "off" {
				t.Fatalf("attach: %+v, %v", att, err)
			}
			if got := r.ports.ports[host][endpoint.KeyContainerID]; got != "c1" {
				t.Errorf("container_id %q", got)
			}
		})
	}
}

// TestAttachNewDatapathUnknown: when OVS cannot say the datapath type, the
// plumbing is undone and the error returned.
func TestAttachNewDatapathUnknown(t *testing.T) {
	r, _ := newInsertingRig()
	r.ports.datapathErr = errBoom
	_, err := r.a.Attach(context.Background(), r.c, opts())
	if !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	if got, want := methods(r.j.calls), "AddVeth,Configure,AddDefaultRoute,SetUp,DeleteVeth"; got != want {
		t.Errorf("calls %s\nwant  %s", got, want)
	}
	if len(r.links.names()) != 0 || len(r.ports.ports) != 0 {
		t.Errorf("left behind: %v %v", r.links.names(), r.ports.ports)
	}
}

// TestAttachNewFallsBack: what may be attached already goes to the bridge:
// the same attach again (the host end exists) is a no-op, and a port whose
// name is taken by someone else is refused without being touched, after
// the plumbing is undone.
func TestAttachNewFallsBack(t *testing.T) {
	t.Run("attached already", func(t *testing.T) {
		r, ip := newInsertingRig()
		ctx := context.Background()
		if _, err := r.a.Attach(ctx, r.c, opts()); err != nil {
			t.Fatal(err)
		}
		r.j.calls = nil
		att, err := r.a.Attach(ctx, r.c, opts())
		if err != nil || att.Created {
			t.Fatalf("second attach: %+v, %v", att, err)
		}
		if len(r.j.calls) != 0 || ip.reads != 1 {
			t.Errorf("calls %v, bridge reads %d: want none and one", r.j.calls, ip.reads)
		}
	})
	t.Run("name taken", func(t *testing.T) {
		r, ip := newInsertingRig()
		host := HostIfName("c1", "eth1")
		theirs := map[string]string{endpoint.KeyOwner: "someone", endpoint.KeyNetwork: "blue"}
		r.ports.ports[host] = theirs
		_, err := r.a.Attach(context.Background(), r.c, opts())
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("got %v, want ErrInUse", err)
		}
		if got, want := methods(r.j.calls), "AddVeth,Configure,AddDefaultRoute,SetUp,SetTxChecksum,InsertPort,DeleteVeth"; got != want {
			t.Errorf("calls %s\nwant  %s", got, want)
		}
		if ip.reads != 1 || r.ports.ports[host]["ofctl-agent.owner"] != "someone" || len(r.links.names()) != 0 {
			t.Errorf("reads %d, port %v, links %v", ip.reads, r.ports.ports[host], r.links.names())
		}
		if !strings.Contains(err.Error(), "someone") {
			t.Errorf("error does not name the owner: %v", err)
		}
	})
}
