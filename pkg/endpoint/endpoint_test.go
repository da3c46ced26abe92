package endpoint

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestFromInterface(t *testing.T) {
	good := map[string]string{KeyNetwork: "blue", KeyIP: "10.1.0.5", KeyContainerID: "c1", KeyContainerIface: "eth1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "<del>" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		ofport  int
		ext     map[string]string
		wantErr error  // sentinel, or nil
		badKey  string // key named by an *InvalidError
		wantMAC string
	}{
		{"derived mac", 3, good, nil, "", "0a:58:0a:01:00:05"},
		{"explicit mac", 3, with(KeyMAC, "02:00:00:00:00:01"), nil, "", "02:00:00:00:00:01"},
		{"not ours", 3, map[string]string{"foo": "bar"}, ErrNotEndpoint, "", ""},
		{"no ofport", -1, good, ErrNoOFPort, "", ""},
		{"ofport zero", 0, good, ErrNoOFPort, "", ""},
		{"ofport reserved", 0xfffe, good, ErrNoOFPort, "", ""},
		{"empty network", 3, with(KeyNetwork, ""), nil, KeyNetwork, ""},
		{"missing ip", 3, with(KeyIP, "<del>"), nil, KeyIP, ""},
		{"bad ip", 3, with(KeyIP, "10.1.0"), nil, KeyIP, ""},
		{"ipv6", 3, with(KeyIP, "fd00::1"), nil, KeyIP, ""},
		{"ip with prefix", 3, with(KeyIP, "10.1.0.5/24"), nil, KeyIP, ""},
		{"multicast ip", 3, with(KeyIP, "224.0.0.1"), nil, KeyIP, ""},
		{"broadcast ip", 3, with(KeyIP, "255.255.255.255"), nil, KeyIP, ""},
		{"bad mac", 3, with(KeyMAC, "zz:00:00:00:00:01"), nil, KeyMAC, ""},
		{"multicast mac", 3, with(KeyMAC, "01:00:5e:00:00:01"), nil, KeyMAC, ""},
		{"zero mac", 3, with(KeyMAC, "00:00:00:00:00:00"), nil, KeyMAC, ""},
		{"named", 3, with(KeyName, "Web-1"), nil, "", "0a:58:0a:01:00:05"},
		{"bad name", 3, with(KeyName, "web_1"), nil, KeyName, ""},
		{"empty name", 3, with(KeyName, ""), nil, KeyName, ""},
		{"ports", 3, with(KeyPorts, "tcp:8080:80,udp:5353:53"), nil, "", "0a:58:0a:01:00:05"},
		{"bad ports", 3, with(KeyPorts, "tcp:8080"), nil, KeyPorts, ""},
		{"gateway role", 3, with(KeyRole, RoleGateway), nil, "", "0a:58:0a:01:00:05"},
		{"bad role", 3, with(KeyRole, "router"), nil, KeyRole, ""},
		{"long mac", 3, with(KeyMAC, "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"), nil, KeyMAC, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep, err := FromInterface("vport", c.ofport, c.ext)
			var inv *InvalidError
			switch {
			case c.badKey != "":
				if !errors.As(err, &inv) || inv.Key != c.badKey {
					t.Fatalf("err = %v, want InvalidError on %s", err, c.badKey)
				}
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if ep.MAC.String() != c.wantMAC || ep.OFPort != uint32(c.ofport) || ep.Network != "blue" || ep.ContainerIface != "eth1" {
					t.Fatalf("got %+v", ep)
				}
				if ep.Gateway != (c.ext[KeyRole] == RoleGateway) {
					t.Fatalf("Gateway = %v with role %q", ep.Gateway, c.ext[KeyRole])
				}
			}
		})
	}
}

func ep(port string, ofport uint32, network, ip, mac string) Endpoint {
	m, _ := net.ParseMAC(mac)
	return Endpoint{Port: port, OFPort: ofport, Network: network, IP: netip.MustParseAddr(ip), MAC: m}
}

func ports(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Port)
	}
	return out
}

func TestRegistryConflicts(t *testing.T) {
	r := NewRegistry()
	a := ep("a", 1, "blue", "10.0.0.1", "02:00:00:00:00:01")
	ch := r.Upsert(a)
	if len(ch.Added) != 1 || len(ch.Conflicts) != 0 {
		t.Fatalf("first upsert: %+v", ch)
	}
	if ch := r.Upsert(a); !ch.Empty() {
		t.Fatalf("same upsert again changed something: %+v", ch)
	}
	// Same IP, other network: fine. Same IP, same network: waits.
	if ch := r.Upsert(ep("red", 2, "red", "10.0.0.1", "02:00:00:00:00:01")); len(ch.Added) != 1 {
		t.Fatalf("other network: %+v", ch)
	}
	ch = r.Upsert(ep("dupip", 3, "blue", "10.0.0.1", "02:00:00:00:00:03"))
	if len(ch.Added) != 0 || len(ch.Conflicts) != 1 || ch.Conflicts[0].What != "ip" || ch.Conflicts[0].HeldBy != "a" {
		t.Fatalf("duplicate ip: %+v", ch)
	}
	ch = r.Upsert(ep("dupmac", 4, "blue", "10.0.0.4", "02:00:00:00:00:01"))
	if len(ch.Conflicts) != 1 || ch.Conflicts[0].What != "mac" {
		t.Fatalf("duplicate mac: %+v", ch)
	}
	if got := ports(r.Active()); len(got) != 2 {
		t.Fatalf("active = %v", got)
	}
	// The holder leaves: both waiters get in, in name order, nothing lost.
	ch = r.Delete("a")
	if got := ports(ch.Added); len(got) != 2 || got[0] != "dupip" || got[1] != "dupmac" {
		t.Fatalf("after holder left, added %v", got)
	}
	if got := ports(ch.Removed); len(got) != 1 || got[0] != "a" {
		t.Fatalf("removed %v", got)
	}
	if _, active, ok := r.Get("dupip"); !ok || !active {
		t.Fatal("dupip not active")
	}
}

func TestRegistryUpdateMovesClaims(t *testing.T) {
	r := NewRegistry()
	r.Upsert(ep("a", 1, "blue", "10.0.0.1", "02:00:00:00:00:01"))
	// The port changes IP: the old IP is released, the new one claimed.
	ch := r.Upsert(ep("a", 1, "blue", "10.0.0.2", "02:00:00:00:00:01"))
	if len(ch.Removed) != 1 || len(ch.Added) != 1 || ch.Added[0].IP.String() != "10.0.0.2" {
		t.Fatalf("update: %+v", ch)
	}
	if ch := r.Upsert(ep("b", 2, "blue", "10.0.0.1", "02:00:00:00:00:02")); len(ch.Added) != 1 {
		t.Fatalf("released ip not free: %+v", ch)
	}
	if ch := r.Delete("missing"); !ch.Empty() {
		t.Fatalf("delete of unknown port: %+v", ch)
	}
}

// A new name is a change of the endpoint (the agent's name table and the
// etcd publisher follow it); the same row again is none.
func TestRegistryRename(t *testing.T) {
	r := NewRegistry()
	a := ep("a", 1, "blue", "10.0.0.1", "02:00:00:00:00:01")
	a.Name = "c1"
	r.Upsert(a)
	if ch := r.Upsert(a); !ch.Empty() {
		t.Fatalf("same endpoint again: %+v", ch)
	}
	a.Name = "c1b"
	ch := r.Upsert(a)
	if len(ch.Removed) != 1 || ch.Removed[0].Name != "c1" || len(ch.Added) != 1 || ch.Added[0].Name != "c1b" {
		t.Fatalf("rename: %+v", ch)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name, wantErr string // wantErr: part of the message; "" valid
	}{
		{"web", ""},
		{"Web-1", ""},
		{"0db", ""},
		{strings.Repeat("a", 63), ""},
		{"", "empty name"},
		{strings.Repeat("a", 64), "64 characters, at most 63"},
		{"-web", "starts or ends with '-'"},
		{"web-", "starts or ends with '-'"},
		{"my_web", `character '_' at position 3`},
		{"web.blue", `character '.' at position 4`},
		{"wéb", `character 'é' at position 2`},
		{"a b", `character ' '`},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateName(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidName)):
			t.Errorf("ValidateName(%q) = %v, want an ErrInvalidName containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in, want, wantErr string // want: FormatPorts of the result
	}{
		{"", "", ""},
		{"tcp:8080:80", "tcp:8080:80", ""},
		{"TCP:8080:80, udp:5353:53", "tcp:8080:80,udp:5353:53", ""},
		{"tcp:53:53,udp:53:53", "tcp:53:53,udp:53:53", ""},
		{"tcp:8080", "", "want proto:hostport:port"},
		{"sctp:1:1", "", `protocol "sctp"`},
		{"tcp:0:80", "", "host port"},
		{"tcp:8080:65536", "", "container port"},
		{"tcp:x:80", "", "not a port number"},
		{"tcp:8080:80,tcp:8080:81", "", "given twice"},
		{"tcp:8080:80,", "", "want proto:hostport:port"},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParsePorts(%q) = %v", tt.in, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParsePorts(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
		case err == nil && FormatPorts(got) != tt.want:
			t.Errorf("ParsePorts(%q) formats as %q, want %q", tt.in, FormatPorts(got), tt.want)
		}
	}
}
