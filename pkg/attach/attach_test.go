package attach

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// Namespaces by name alone, for the fakes (no descriptor).
var (
	hostNS = &NetNS{path: "/host"}
	ctrNS  = &NetNS{path: "/ctr"}
)

var errBoom = errors.New("boom")

type rig struct {
	j     *journal
	links *fakeLinks
	ports *fakePorts
	a     *Attacher
	c     Container
}

func newRig() *rig {
	j := &journal{fail: map[string]error{}}
	r := &rig{j: j, links: newFakeLinks(j), ports: newFakePorts(j), c: Container{ID: "c1", NetNS: ctrNS}}
	r.a = &Attacher{Ports: r.ports, Links: r.links, HostNS: hostNS}
	return r
}

func opts() Options {
	return Options{Network: "blue", IP: netip.MustParsePrefix("10.1.0.5/16"), Gateway: netip.MustParseAddr("10.1.0.1")}
}

func TestAttachSteps(t *testing.T) {
	r := newRig()
	att, err := r.a.Attach(context.Background(), r.c, opts())
	if err != nil {
		t.Fatal(err)
	}
	host := HostIfName("c1", "eth1")
	want := []string{
		"AddVeth /host " + host + " /ctr eth1 mac=0a:58:0a:01:00:05 mtu=1450",
		"Configure /ctr eth1 name=eth1 mac=0a:58:0a:01:00:05 mtu=1450 addr=10.1.0.5/16",
		"SetTxChecksum /ctr eth1 off", // the fake bridge is netdev
		"AddDefaultRoute /ctr eth1 10.1.0.1",
		"SetUp /host " + host,
		"AddPort " + host,
	}
	if got := strings.Join(r.j.calls, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if !att.Created || att.Port != host || att.Options.MAC.String() != "0a:58:0a:01:00:05" || att.TxChecksum != "off" {
		t.Fatalf("attachment %+v", att)
	}
	ext := r.ports.ports[host]
	wantExt := map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.5", endpoint.KeyMAC: "0a:58:0a:01:00:05",
		endpoint.KeyOwner: "attach", endpoint.KeyContainerID: "c1", endpoint.KeyContainerIface: "eth1"}
	for k, v := range wantExt {
		if ext[k] != v {
			t.Errorf("external_ids:%s = %q, want %q", k, ext[k], v)
		}
	}
	// The agent's own parser must accept what Attach writes.
	if ep, err := endpoint.FromInterface(host, 3, ext); err != nil || ep.IP.String() != "10.1.0.5" {
		t.Errorf("endpoint.FromInterface: %+v, %v", ep, err)
	}
}

// TestAttachRollback fails every step in turn, both inside the step and just
// after it succeeded, and checks the undo order and that nothing is left.
func TestAttachRollback(t *testing.T) {
	const undoAll = "DeletePort,DeleteVeth"
	cases := []struct {
		name      string
		failCall  string // journal method to fail
		failAfter string // or: step after which to fail
		want      string // methods called, in order
	}{
		{"create veth fails", "AddVeth", "", "AddVeth"},
		{"configure fails", "Configure", "", "AddVeth,Configure,DeleteVeth"},
		{"tx offload fails", "SetTxChecksum", "", "AddVeth,Configure,SetTxChecksum,DeleteVeth"},
		{"route fails", "AddDefaultRoute", "", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,DeleteVeth"},
		{"host up fails", "SetUp", "", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,SetUp,DeleteVeth"},
		{"add port fails", "AddPort", "", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,SetUp,AddPort,DeletePort,DeleteVeth"},
		{"after create veth", "", "create veth", "AddVeth,DeleteVeth"},
		{"after configure", "", "configure container interface", "AddVeth,Configure,DeleteVeth"},
		{"after tx offload", "", "set container tx checksum offload", "AddVeth,Configure,SetTxChecksum,DeleteVeth"},
		{"after route", "", "add default route", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,DeleteVeth"},
		{"after host up", "", "set host end up", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,SetUp,DeleteVeth"},
		{"after check", "", "check container interface", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,SetUp,DeleteVeth"},
		{"after add port", "", "add OVS port", "AddVeth,Configure,SetTxChecksum,AddDefaultRoute,SetUp,AddPort," + undoAll},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			if c.failCall != "" {
				r.j.fail[c.failCall] = errBoom
			}
			r.a.afterStep = func(s string) error {
				if s == c.failAfter {
					return errBoom
				}
				return nil
			}
			_, err := r.a.Attach(context.Background(), r.c, opts())
			var se *StepError
			if !errors.As(err, &se) || !errors.Is(err, errBoom) || se.Rollback != nil {
				t.Fatalf("got %v, want a StepError wrapping boom with a clean rollback", err)
			}
			if got := methods(r.j.calls); got != c.want {
				t.Errorf("calls %s\nwant  %s", got, c.want)
			}
			if n := r.links.names(); len(n) != 0 || len(r.ports.ports) != 0 {
				t.Errorf("left behind: links %v ports %v", n, r.ports.ports)
			}
		})
	}
}

func TestAttachRollbackLostCommit(t *testing.T) {
	r := newRig()
	r.ports.addTakesEffect = true
	r.j.fail["AddPort"] = errBoom
	if _, err := r.a.Attach(context.Background(), r.c, opts()); !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	if len(r.ports.ports) != 0 || len(r.links.names()) != 0 {
		t.Fatalf("a port whose commit answer was lost was left: %v %v", r.ports.ports, r.links.names())
	}
}

func TestAttachRollbackFailureReported(t *testing.T) {
	r := newRig()
	r.j.fail["AddPort"] = errBoom
	r.j.fail["DeleteVeth"] = errors.New("device busy")
	_, err := r.a.Attach(context.Background(), r.c, opts())
	var se *StepError
	if !errors.As(err, &se) || se.Step != "add OVS port" || se.Rollback == nil ||
		!strings.Contains(err.Error(), "rollback incomplete") || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("got %v, want the failed step and the failed undo", err)
	}
}

func TestAttachCanceled(t *testing.T) {
	r := newRig()
	ctx, cancel := context.WithCancel(context.Background())
	r.a.afterStep = func(s string) error {
		if s == "create veth" {
			cancel()
		}
		return nil
	}
	if _, err := r.a.Attach(ctx, r.c, opts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	if got := methods(r.j.calls); got != "AddVeth,DeleteVeth" {
		t.Fatalf("calls %s: rollback must run despite the canceled context", got)
	}
}

func TestAttachIdempotent(t *testing.T) {
	r := newRig()
	ctx := context.Background()
	if _, err := r.a.Attach(ctx, r.c, opts()); err != nil {
		t.Fatal(err)
	}
	r.j.calls = nil
	att, err := r.a.Attach(ctx, r.c, opts())
	if err != nil || att.Created {
		t.Fatalf("second attach: %+v, %v", att, err)
	}
	// Without an IP it adopts the existing one instead of allocating.
	o := opts()
	o.IP = netip.Prefix{}
	if att, err = r.a.Attach(ctx, r.c, o); err != nil || att.Options.IP.String() != "10.1.0.5/16" {
		t.Fatalf("attach without ip: %+v, %v", att, err)
	}
	if len(r.j.calls) != 0 {
		t.Fatalf("idempotent attach changed something: %v", r.j.calls)
	}
}

func TestAttachMismatch(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Options)
	}{
		{"ip", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.0.6/16") }},
		{"address", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.0.5/24"); o.Gateway = netip.Addr{} }},
		{"mtu", func(o *Options) { o.MTU = 1400 }},
		{"gateway", func(o *Options) { o.Gateway = netip.MustParseAddr("10.1.0.2") }},
		{"gateway", func(o *Options) { o.Gateway = netip.Addr{} }},
		{"network", func(o *Options) { o.Network = "green" }},
		{"container mac", func(o *Options) { o.MAC = []byte{2, 0, 0, 0, 0, 1} }},
		{"published ports", func(o *Options) { o.Ports = []endpoint.Published{{Proto: endpoint.TCP, HostPort: 8080, Port: 80}} }},
	}
	for _, c := range cases {
		r := newRig()
		if _, err := r.a.Attach(context.Background(), r.c, opts()); err != nil {
			t.Fatal(err)
		}
		o := opts()
		c.edit(&o)
		_, err := r.a.Attach(context.Background(), r.c, o)
		var me *MismatchError
		if !errors.As(err, &me) || me.Field != c.field {
			t.Errorf("%s: got %v, want a MismatchError", c.field, err)
		}
	}
}

// TestAttachPublishes: --publish ends up in external_ids ofctl-agent.ports
// as the agent parses it; attaching again with the same ports changes
// nothing, with other ports it is a mismatch.
func TestAttachPublishes(t *testing.T) {
	r := newRig()
	o := opts()
	o.Ports = []endpoint.Published{{Proto: endpoint.TCP, HostPort: 8080, Port: 80}, {Proto: endpoint.UDP, HostPort: 5353, Port: 53}}
	att, err := r.a.Attach(context.Background(), r.c, o)
	if err != nil {
		t.Fatal(err)
	}
	ext := r.ports.ports[att.Port]
	if got := ext[endpoint.KeyPorts]; got != "tcp:8080:80,udp:5353:53" {
		t.Fatalf("external_ids:%s = %q", endpoint.KeyPorts, got)
	}
	ep, err := endpoint.FromInterface(att.Port, 3, ext)
	if err != nil || !slices.Equal(ep.Ports, o.Ports) {
		t.Fatalf("the agent reads %+v, %v; want %+v", ep.Ports, err, o.Ports)
	}
	r.j.calls = nil
	if again, err := r.a.Attach(context.Background(), r.c, o); err != nil || again.Created || len(r.j.calls) != 0 {
		t.Fatalf("again: %+v, %v, calls %v", again, err, r.j.calls)
	}
	var me *MismatchError
	if _, err := r.a.Attach(context.Background(), r.c, opts()); !errors.As(err, &me) || me.Field != "published ports" ||
		me.Have != "tcp:8080:80,udp:5353:53" || me.Want != "none" {
		t.Fatalf("without --publish: %v", err)
	}
	// Without ports nothing is written.
	r2 := newRig()
	att2, _ := r2.a.Attach(context.Background(), r2.c, opts())
	if _, ok := r2.ports.ports[att2.Port][endpoint.KeyPorts]; ok {
		t.Fatalf("external_ids:%s written without ports", endpoint.KeyPorts)
	}
}

// TestAttachName: the name ends up in external_ids ofctl-agent.name as the
// agent reads it; again with the same name changes nothing, another name is
// a mismatch; an invalid name is refused before anything is made.
func TestAttachName(t *testing.T) {
	r := newRig()
	o := opts()
	o.Name = "c1"
	att, err := r.a.Attach(context.Background(), r.c, o)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := endpoint.FromInterface(att.Port, 3, r.ports.ports[att.Port])
	if err != nil || ep.Name != "c1" {
		t.Fatalf("the agent reads name %q, %v; want c1", ep.Name, err)
	}
	r.j.calls = nil
	if again, err := r.a.Attach(context.Background(), r.c, o); err != nil || again.Created || len(r.j.calls) != 0 {
		t.Fatalf("again: %+v, %v, calls %v", again, err, r.j.calls)
	}
	var me *MismatchError
	if _, err := r.a.Attach(context.Background(), r.c, opts()); !errors.As(err, &me) || me.Field != "name" || me.Have != "c1" || me.Want != "none" {
		t.Fatalf("without a name: %v", err)
	}
	r2 := newRig()
	o.Name = "my_app"
	var oe *OptionError
	if _, err := r2.a.Attach(context.Background(), r2.c, o); !errors.As(err, &oe) || oe.Field != "name" || len(r2.ports.ports) != 0 {
		t.Fatalf("invalid name: %v, ports %v", err, r2.ports.ports)
	}
}

func TestAttachIncomplete(t *testing.T) {
	r := newRig()
	if _, err := r.a.Attach(context.Background(), r.c, opts()); err != nil {
		t.Fatal(err)
	}
	// The container died: its namespace and the veth pair are gone.
	if err := r.links.DeleteVeth(hostNS, HostIfName("c1", "eth1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.Attach(context.Background(), r.c, opts()); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("got %v, want ErrIncomplete", err)
	}
}

func TestAttachRefusals(t *testing.T) {
	host := HostIfName("c1", "eth1")
	cases := []struct {
		name  string
		setup func(r *rig)
		check func(error) bool
	}{
		{"duplicate ip", func(r *rig) {
			r.ports.ports["other"] = map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.5"}
		}, func(err error) bool {
			var de *DuplicateError
			return errors.As(err, &de) && de.What == "ip" && de.HeldBy == "other" && strings.Contains(err.Error(), "port other")
		}},
		{"duplicate mac", func(r *rig) {
			r.ports.ports["other"] = map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.9", endpoint.KeyMAC: "0a:58:0a:01:00:05"}
		}, func(err error) bool { var de *DuplicateError; return errors.As(err, &de) && de.What == "mac" }},
		{"same ip other network is fine", func(r *rig) {
			r.ports.ports["other"] = map[string]string{endpoint.KeyNetwork: "green", endpoint.KeyIP: "10.1.0.5"}
		}, func(err error) bool { return err == nil }},
		{"foreign port with our keys", func(r *rig) {
			r.ports.ports["dockerport"] = map[string]string{endpoint.KeyContainerID: "c1", endpoint.KeyContainerIface: "eth1"}
		}, func(err error) bool { return errors.Is(err, ErrInUse) }},
		{"container ifname taken", func(r *rig) {
			r.links.links[key(ctrNS.path, "eth1")] = &fakeLink{ns: ctrNS.path, name: "eth1"}
		}, func(err error) bool { return errors.Is(err, ErrInUse) && strings.Contains(err.Error(), "eth1") }},
		{"leftover host veth", func(r *rig) {
			r.links.links[key(hostNS.path, host)] = &fakeLink{ns: hostNS.path, name: host}
		}, func(err error) bool { return errors.Is(err, ErrInUse) && strings.Contains(err.Error(), "run detach") }},
		{"ports unavailable", func(r *rig) { r.ports.listErr = errBoom }, func(err error) bool { return errors.Is(err, errBoom) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			c.setup(r)
			_, err := r.a.Attach(context.Background(), r.c, opts())
			if !c.check(err) {
				t.Fatalf("got %v", err)
			}
			if err != nil && len(r.j.calls) != 0 {
				t.Fatalf("a refused attach changed something: %v", r.j.calls)
			}
		})
	}
}

// TestAttachAllocates: without an IP the allocator picks one; a wanted IP
// is held with it too; a refused attach gives its address back; an
// attachment that exists asks the allocator nothing.
func TestAttachAllocates(t *testing.T) {
	r := newRig()
	alloc := &fakeAlloc{j: r.j, next: []netip.Prefix{netip.MustParsePrefix("10.1.7.1/16"), netip.MustParsePrefix("10.1.7.2/16")},
		held: map[netip.Addr]string{}}
	r.a.Alloc = alloc
	ctx := context.Background()
	o := opts()
	o.IP, o.Gateway = netip.Prefix{}, netip.Addr{}
	att, err := r.a.Attach(ctx, r.c, o)
	if err != nil || att.Options.IP.String() != "10.1.7.1/16" || r.j.calls[0] != "Allocate blue c1/eth1 invalid Prefix" {
		t.Fatalf("got %+v, %v (calls %q); want 10.1.7.1/16 from the allocator", att.Options.IP, err, r.j.calls)
	}
	r.j.calls = nil
	if _, err := r.a.Attach(ctx, r.c, o); err != nil || slices.ContainsFunc(r.j.calls, func(c string) bool { return strings.HasPrefix(c, "Allocate") }) {
		t.Fatalf("attaching again: %v, calls %q", err, r.j.calls)
	}

	c2 := Container{ID: "c2", NetNS: &NetNS{path: "/c2"}}
	o.IP = netip.MustParsePrefix("10.1.9.9/16")
	if att, err := r.a.Attach(ctx, c2, o); err != nil || att.Options.IP != o.IP || alloc.held[o.IP.Addr()] != "c2/eth1" {
		t.Fatalf("wanted address: %+v, %v, held %v", att.Options.IP, err, alloc.held)
	}

	// A step fails: the address goes back.
	c3 := Container{ID: "c3", NetNS: &NetNS{path: "/c3"}}
	o.IP = netip.Prefix{}
	r.j.fail["AddPort"] = errors.New("ovsdb down")
	if _, err := r.a.Attach(ctx, c3, o); err == nil {
		t.Fatal("attach with a failing step succeeded")
	}
	if _, held := alloc.held[netip.MustParseAddr("10.1.7.2")]; held || !slices.Contains(r.j.calls, "Release blue c3/eth1 10.1.7.2") {
		t.Fatalf("a failed attach kept its address: held %v, calls %q", alloc.held, r.j.calls)
	}
	if _, err := r.a.Attach(ctx, c3, o); !errors.Is(err, agentapi.ErrExhausted) {
		t.Fatalf("exhausted allocator: %v", err)
	}

	r.a.Alloc = nil
	if _, err := r.a.Attach(ctx, c3, o); err == nil {
		t.Fatal("attach without ip and without allocator succeeded")
	}
}

func TestDetach(t *testing.T) {
	r := newRig()
	ctx := context.Background()
	c2 := Container{ID: "c2", NetNS: &NetNS{path: "/c2"}}
	o2 := opts()
	o2.IfName, o2.IP = "eth2", netip.MustParsePrefix("10.1.0.6/16")
	o3 := opts()
	o3.IP = netip.MustParsePrefix("10.1.0.7/16")
	for _, a := range []struct {
		c Container
		o Options
	}{{r.c, opts()}, {r.c, o2}, {c2, o3}} {
		if _, err := r.a.Attach(ctx, a.c, a.o); err != nil {
			t.Fatal(err)
		}
	}
	r.ports.ports["foreign"] = map[string]string{endpoint.KeyContainerID: "c1", endpoint.KeyContainerIface: "eth9"}
	if err := r.a.Detach(ctx, "c1", "eth9"); !errors.Is(err, ErrInUse) {
		t.Fatalf("detach of a port attach did not make: %v", err)
	}
	if err := r.a.Detach(ctx, "c1", "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := r.a.Detach(ctx, "c1", "eth1"); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("second detach: %v, want ErrNotAttached", err)
	}
	removed, err := r.a.DetachAll(ctx, "c1")
	if err != nil || len(removed) != 1 || removed[0] != HostIfName("c1", "eth2") {
		t.Fatalf("DetachAll = %v, %v", removed, err)
	}
	if _, ok := r.ports.ports["foreign"]; !ok {
		t.Fatal("DetachAll removed a port attach did not make")
	}
	if _, ok := r.ports.ports[HostIfName("c2", "eth1")]; !ok || len(r.links.names()) != 2 {
		t.Fatalf("other container's port or veth removed: %v %v", r.ports.ports, r.links.names())
	}
}

func TestDetachLeftoverVeth(t *testing.T) {
	r := newRig()
	r.a.afterStep = func(s string) error {
		if s == "create veth" {
			panic("simulated crash") // the process dies: no rollback
		}
		return nil
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = r.a.Attach(context.Background(), r.c, opts())
	}()
	if len(r.links.names()) != 2 {
		t.Fatalf("setup: links %v", r.links.names())
	}
	if err := r.a.Detach(context.Background(), "c1", "eth1"); err != nil {
		t.Fatal(err)
	}
	if n := r.links.names(); len(n) != 0 {
		t.Fatalf("leftover veth not removed: %v", n)
	}
}
