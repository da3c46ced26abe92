package attach

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDecideTxChecksum(t *testing.T) {
	cases := []struct {
		mode     TxOffload
		datapath string
		want     string // txAction.String()
	}{
		{TxOffloadAuto, "netdev", "off"},
		{TxOffloadAuto, "system", ""},
		{TxOffloadAuto, "", ""}, // vswitchd's default: system
		{TxOffloadAuto, "dummy", ""},
		{TxOffloadOff, "system", "off"},
		{TxOffloadOff, "netdev", "off"},
		{TxOffloadOn, "netdev", "on"},
		{TxOffloadOn, "system", "on"},
	}
	for _, c := range cases {
		if got := decideTxChecksum(c.mode, c.datapath).String(); got != c.want {
			t.Errorf("mode %s on %q: %q, want %q", c.mode, c.datapath, got, c.want)
		}
	}
}

func TestParseTxOffload(t *testing.T) {
	for in, want := range map[string]TxOffload{"": TxOffloadAuto, "auto": TxOffloadAuto, "on": TxOffloadOn, "off": TxOffloadOff} {
		if got, err := ParseTxOffload(in); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"OFF", "true", "0", " off"} {
		var oe *OptionError
		if _, err := ParseTxOffload(in); !errors.As(err, &oe) || oe.Field != "tx-offload" {
			t.Errorf("%q: %v, want an OptionError on tx-offload", in, err)
		}
	}
}

// TestAttachTxOffload: what Attach does to the container end for each mode
// and datapath, and that only auto asks for the datapath type.
func TestAttachTxOffload(t *testing.T) {
	errDB := errors.New("ovsdb gone")
	cases := []struct {
		name     string
		mode     TxOffload
		datapath string
		dpErr    error
		call     string // the SetTxChecksum call, "" none
		want     string // Attachment.TxChecksum
		txOff    bool   // state of the container end afterwards
	}{
		{"auto netdev", TxOffloadAuto, "netdev", nil, "SetTxChecksum /ctr eth1 off", "off", true},
		{"auto system", TxOffloadAuto, "system", nil, "", "", false},
		{"default is auto", "", "netdev", nil, "SetTxChecksum /ctr eth1 off", "off", true},
		{"off on system", TxOffloadOff, "system", nil, "SetTxChecksum /ctr eth1 off", "off", true},
		{"on on netdev", TxOffloadOn, "netdev", nil, "SetTxChecksum /ctr eth1 on", "on", false},
		{"explicit mode needs no datapath", TxOffloadOff, "", errDB, "SetTxChecksum /ctr eth1 off", "off", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig()
			r.ports.datapath, r.ports.datapathErr = c.datapath, c.dpErr
			o := opts()
			o.TxOffload = c.mode
			att, err := r.a.Attach(context.Background(), r.c, o)
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			for _, call := range r.j.calls {
				if strings.HasPrefix(call, "SetTxChecksum") {
					calls = append(calls, call)
				}
			}
			if got := strings.Join(calls, ";"); got != c.call {
				t.Errorf("calls %q, want %q", got, c.call)
			}
			l, err := r.links.get(ctrNS.path, "eth1")
			if err != nil || att.TxChecksum != c.want || l.txOff != c.txOff {
				t.Errorf("attachment says %q, container end off=%v (%v); want %q, off=%v", att.TxChecksum, l.txOff, err, c.want, c.txOff)
			}
		})
	}
}

// TestAttachTxOffloadDatapathError: auto cannot decide without the datapath
// type; Attach fails before any side effect.
func TestAttachTxOffloadDatapathError(t *testing.T) {
	r := newRig()
	r.ports.datapathErr = errors.New("ovsdb gone")
	_, err := r.a.Attach(context.Background(), r.c, opts())
	if err == nil || !strings.Contains(err.Error(), "datapath type of the bridge") || !errors.Is(err, r.ports.datapathErr) {
		t.Fatalf("got %v", err)
	}
	if len(r.j.calls) != 0 || len(r.links.names()) != 0 || len(r.ports.ports) != 0 {
		t.Fatalf("side effects: calls %v links %v ports %v", r.j.calls, r.links.names(), r.ports.ports)
	}
}

// TestAttachTxOffloadExisting: attaching again fixes the offload of an
// existing attachment (made before attach handled it, or changed by hand)
// and changes nothing when it is right.
func TestAttachTxOffloadExisting(t *testing.T) {
	ctx := context.Background()
	r := newRig()
	if _, err := r.a.Attach(ctx, r.c, opts()); err != nil {
		t.Fatal(err)
	}
	l, _ := r.links.get(ctrNS.path, "eth1")
	l.txOff = false // ethtool -K eth1 tx on, or an attach from before
	r.j.calls = nil
	att, err := r.a.Attach(ctx, r.c, opts())
	if err != nil || att.Created || att.TxChecksum != "off" || !l.txOff {
		t.Fatalf("attach again: %+v, %v; container end off=%v", att, err, l.txOff)
	}
	if got := strings.Join(r.j.calls, ";"); got != "SetTxChecksum /ctr eth1 off" {
		t.Errorf("calls %q", got)
	}
	r.j.calls = nil
	if _, err := r.a.Attach(ctx, r.c, opts()); err != nil || len(r.j.calls) != 0 {
		t.Errorf("attach when already right: %v, calls %v", err, r.j.calls)
	}
	o := opts()
	o.TxOffload = TxOffloadOn
	if att, err := r.a.Attach(ctx, r.c, o); err != nil || att.TxChecksum != "on" || l.txOff {
		t.Errorf("attach again with on: %+v, %v", att, err)
	}
}

// TestAttachTxOffloadExistingErrors: an ioctl failure on an existing
// attachment is reported with the port and leaves the attachment alone.
func TestAttachTxOffloadExistingErrors(t *testing.T) {
	ctx := context.Background()
	for _, read := range []bool{true, false} {
		r := newRig()
		if _, err := r.a.Attach(ctx, r.c, opts()); err != nil {
			t.Fatal(err)
		}
		l, _ := r.links.get(ctrNS.path, "eth1")
		l.txOff = false
		if read {
			r.links.readErr = errBoom
		} else {
			r.j.fail["SetTxChecksum"] = errBoom
		}
		host := HostIfName("c1", "eth1")
		_, err := r.a.Attach(ctx, r.c, opts())
		if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "port "+host) {
			t.Errorf("read fails=%v: got %v, want boom naming port %s", read, err, host)
		}
		if len(r.links.names()) != 2 || len(r.ports.ports) != 1 {
			t.Errorf("read fails=%v: attachment changed: links %v ports %v", read, r.links.names(), r.ports.ports)
		}
	}
}
