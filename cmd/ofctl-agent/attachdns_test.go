package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
)

func TestAttachDNSName(t *testing.T) {
	tests := []struct {
		flag, path, docker string
		want, warn, err    string
	}{
		{nameAuto, "/var/run/netns/c1", "", "c1", "", ""},
		{nameAuto, "/run/netns/c2", "", "c2", "", ""},
		{nameAuto, "/proc/42/ns/net", "", "", "", ""},
		{nameAuto, "", "web", "web", "", ""},
		{nameAuto, "", "my_app", "", `the Docker container's name "my_app" is not a DNS name`, ""},
		{nameAuto, "/var/run/netns/a.b", "", "", `the network namespace's name "a.b"`, ""},
		{nameNone, "/var/run/netns/c1", "", "", "", ""},
		{"db", "/var/run/netns/c1", "web", "db", "", ""},
		{"-db", "/var/run/netns/c1", "", "", "", `--name "-db"`},
	}
	for _, tt := range tests {
		a := attachArgs{name: tt.flag}
		a.target.path = tt.path
		var warned string
		got, err := a.dnsName(attach.Container{Name: tt.docker}, func(s string) { warned = s })
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) ||
			(warned == "") != (tt.warn == "") || !strings.Contains(warned, tt.warn) {
			t.Errorf("--name %s %s %q: %q %v warned %q; want %q, error %q, warning %q", tt.flag, tt.path, tt.docker, got, err, warned, tt.want, tt.err, tt.warn)
		}
	}
}

func TestAttachResolvConf(t *testing.T) {
	old := etcNetns
	etcNetns = t.TempDir()
	t.Cleanup(func() { etcNetns = old })
	d := &agentapi.DNS{Nameservers: []netip.Addr{netip.MustParseAddr("10.100.1.1")}, Search: []string{"blue.ofctl.internal"},
		Options: []string{"timeout:1", "attempts:3"}}
	a := attachArgs{resolvConf: resolvAuto}
	a.target.path = "/var/run/netns/c1"
	path, err := a.writeResolvConf(d, func(s string) { t.Errorf("warning: %s", s) })
	want := resolvMarker + "nameserver 10.100.1.1\nsearch blue.ofctl.internal\noptions timeout:1 attempts:3\n"
	if b, _ := os.ReadFile(filepath.Join(etcNetns, "c1", "resolv.conf")); err != nil || string(b) != want || path == "" {
		t.Fatalf("written %q (%s, %v), want %q", b, path, err, want)
	}
	// Not for other targets, nor with none, nor without the agent's resolver.
	for _, c := range []struct {
		mode, target string
		dns          *agentapi.DNS
	}{{resolvAuto, "/proc/1/ns/net", d}, {resolvNone, "/var/run/netns/c2", d}, {resolvAuto, "/var/run/netns/c3", nil}} {
		a := attachArgs{resolvConf: c.mode}
		a.target.path = c.target
		if p, err := a.writeResolvConf(c.dns, func(string) {}); p != "" || err != nil {
			t.Errorf("%s %s: wrote %q %v", c.mode, c.target, p, err)
		}
	}
	// A file attach did not write is left alone, with a warning.
	mine := filepath.Join(etcNetns, "c4", "resolv.conf")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("nameserver 192.0.2.53\n"), 0o644)
	a.target.path = "/var/run/netns/c4"
	warned := ""
	if p, err := a.writeResolvConf(d, func(s string) { warned = s }); p != "" || err != nil || warned == "" {
		t.Errorf("someone else's file: wrote %q %v, warning %q", p, err, warned)
	}
	removeResolvConf("/var/run/netns/c4")
	removeResolvConf("/var/run/netns/c1")
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("detach removed a file attach did not write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(etcNetns, "c1")); !os.IsNotExist(err) {
		t.Errorf("detach left attach's resolv.conf: %v", err)
	}
}
