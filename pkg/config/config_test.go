package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte("node-name: from-file\nbridge: br-file\ntunnel-ip: 192.0.2.9\nverify-interval: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"-config", file, "-bridge", "br-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "from-file" || c.Bridge != "br-flag" || c.TunnelIP != "192.0.2.9" || c.VerifyEvery != 3*time.Second {
		t.Fatalf("got %+v", c)
	}
	if c.OpenFlow != "unix:/var/run/openvswitch/br-flag.mgmt" {
		t.Fatalf("default openflow endpoint %q", c.OpenFlow)
	}
	if c.Listen != "127.0.0.1:9750" || c.APISocket != "/run/ofctl-agent/agent.sock" {
		t.Fatalf("listen, api-socket defaults %q, %q", c.Listen, c.APISocket)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown yaml key", []string{"-config", write("typo.yaml", "brigde: x\n")}, []string{"brigde"}},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.yaml")}, []string{"no such file"}},
		{"unknown flag", []string{"-nope"}, []string{"nope"}},
		{"stray argument", []string{"extra"}, []string{"unexpected arguments"}},
		{"several problems at once", []string{"-datapath-type", "kernel", "-tunnel-ip", "fd00::1", "-ovsdb", "/tmp/x"},
			[]string{"datapath-type", "tunnel-ip", "ovsdb"}},
		{"bad ofport", []string{"-tunnel-ofport", "70000"}, []string{"tunnel-ofport"}},
		{"bad underlay-allow", []string{"-underlay-allow", "192.0.2.1, nope"}, []string{`underlay-allow "nope": want IPv4 addresses or prefixes`}},
		{"ipv6 underlay-allow", []string{"-underlay-allow", "fd00::/64"}, []string{`underlay-allow "fd00::/64"`}},
		{"relative api socket", []string{"-api-socket", "agent.sock"}, []string{`api-socket "agent.sock": want an absolute path`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"-config", p})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bridge != "br-int" {
		t.Fatalf("bridge %q", c.Bridge)
	}
}

// TestFlowMonitorKeys: the flow monitor is on by default with a 5 min safety
// net; the file and the flags can change both.
func TestFlowMonitorKeys(t *testing.T) {
	if c := Default(); !c.FlowMonitor || c.MonitorVerify != 5*time.Minute {
		t.Fatalf("defaults %v %v", c.FlowMonitor, c.MonitorVerify)
	}
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte("flow-monitor: false\nmonitored-verify-interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"-config", file})
	if err != nil || c.FlowMonitor || c.MonitorVerify != time.Minute {
		t.Fatalf("from file: %v %v, %v", c.FlowMonitor, c.MonitorVerify, err)
	}
	c, err = Load([]string{"-config", file, "-flow-monitor=true", "-monitored-verify-interval", "2m"})
	if err != nil || !c.FlowMonitor || c.MonitorVerify != 2*time.Minute {
		t.Fatalf("from flags: %v %v, %v", c.FlowMonitor, c.MonitorVerify, err)
	}
	if _, err := Load([]string{"-monitored-verify-interval", "0s"}); err == nil || !strings.Contains(err.Error(), "monitored-verify-interval") {
		t.Fatalf("zero interval: %v", err)
	}
}

func TestUnderlayAllowList(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "[]",
		"192.0.2.1":                    "[192.0.2.1/32]",
		" 192.0.2.1 , 192.0.2.128/25 ": "[192.0.2.1/32 192.0.2.128/25]",
		"192.0.2.77/24":                "[192.0.2.0/24]",
	} {
		c, err := Load([]string{"-underlay-allow", in})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		got, err := c.UnderlayAllowList()
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
}
