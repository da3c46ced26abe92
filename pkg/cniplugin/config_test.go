package cniplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		code       uint   // 0: valid
		msg        string // in the error
		check      func(t *testing.T, c *NetConf)
	}{
		{name: "defaults", conf: `{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni"}`, check: func(t *testing.T, c *NetConf) {
			if c.Network != "blue" || c.Bridge != DefaultBridge || c.OVSDB != DefaultOVSDB || c.AgentSocket != agentapi.DefaultSocket ||
				c.InstallWait() != DefaultInstallTimeout || c.MTU != 0 || c.Delegated() || c.OpenFlow != "unix:/var/run/openvswitch/br-int.mgmt" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "all fields", conf: `{"cniVersion":"1.0.0","name":"k8s","type":"ofctl-cni","network":"red","bridge":"br-x",
			"ovsdb":"tcp:127.0.0.1:6640","agentSocket":"/tmp/a.sock","mtu":1400,"installTimeout":"3s","txOffload":"off",
			"ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}`, check: func(t *testing.T, c *NetConf) {
			if c.Network != "red" || c.Bridge != "br-x" || c.OVSDB != "tcp:127.0.0.1:6640" || c.AgentSocket != "/tmp/a.sock" ||
				c.MTU != 1400 || c.InstallWait() != 3*time.Second || c.TxOffload != "off" || !c.Delegated() || c.IPAM.Type != "host-local" {
				t.Errorf("fields: %+v", c)
			}
		}},
		{name: "runtime fields are accepted", conf: `{"name":"blue","type":"ofctl-cni","runtimeConfig":{"x":1},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`,
			check: func(t *testing.T, c *NetConf) {
				if len(c.ValidAttachments) != 1 || c.ValidAttachments[0].ContainerID != "a" {
					t.Errorf("valid attachments: %+v", c.ValidAttachments)
				}
			}},
		{name: "not json", conf: `{"name":`, code: types.ErrDecodingFailure, msg: "not valid JSON"},
		{name: "wrong type", conf: `{"name":"blue","mtu":"big"}`, code: types.ErrDecodingFailure},
		{name: "no network", conf: `{"type":"ofctl-cni"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid network"},
		{name: "network with space", conf: `{"name":"a b"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid network"},
		{name: "bridge too long", conf: `{"name":"blue","bridge":"abcdefghijklmnop"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid bridge"},
		{name: "bridge with slash", conf: `{"name":"blue","bridge":"a/b"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid bridge"},
		{name: "ovsdb scheme", conf: `{"name":"blue","ovsdb":"/var/run/db.sock"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid ovsdb"},
		{name: "openflow default follows the bridge", conf: `{"name":"blue","bridge":"br-x"}`, check: func(t *testing.T, c *NetConf) {
			if c.OpenFlow != "unix:/var/run/openvswitch/br-x.mgmt" {
				t.Errorf("openflow %q", c.OpenFlow)
			}
		}},
		{name: "openflow scheme", conf: `{"name":"blue","openflow":"br-int.mgmt"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid openflow"},
		{name: "relative socket", conf: `{"name":"blue","agentSocket":"agent.sock"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid agentSocket"},
		{name: "mtu low", conf: `{"name":"blue","mtu":67}`, code: types.ErrInvalidNetworkConfig, msg: "invalid mtu"},
		{name: "mtu high", conf: `{"name":"blue","mtu":65536}`, code: types.ErrInvalidNetworkConfig, msg: "invalid mtu"},
		{name: "timeout garbage", conf: `{"name":"blue","installTimeout":"soon"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid installTimeout"},
		{name: "timeout negative", conf: `{"name":"blue","installTimeout":"-1s"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid installTimeout"},
		{name: "timeout huge", conf: `{"name":"blue","installTimeout":"1h"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid installTimeout"},
		{name: "tx offload", conf: `{"name":"blue","txOffload":"maybe"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid txOffload"},
		{name: "log file and level", conf: `{"name":"blue","logFile":"/var/log/ofctl-cni.log","logLevel":"debug"}`, check: func(t *testing.T, c *NetConf) {
			if c.LogFile != "/var/log/ofctl-cni.log" || c.LogLevel != "debug" {
				t.Errorf("log fields: %+v", c)
			}
		}},
		{name: "log file relative", conf: `{"name":"blue","logFile":"cni.log"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid logFile"},
		{name: "log file a directory", conf: `{"name":"blue","logFile":"/var/log/"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid logFile"},
		{name: "log level", conf: `{"name":"blue","logLevel":"verbose"}`, code: types.ErrInvalidNetworkConfig, msg: "invalid logLevel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.conf))
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("ParseConfig: %v", err)
				}
				tc.check(t, c)
				return
			}
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v (%T), want a *types.Error", err, err)
			}
			if te.Code != tc.code || !strings.Contains(te.Msg, tc.msg) {
				t.Errorf("error code %d %q, want code %d with %q", te.Code, te.Msg, tc.code, tc.msg)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	conf := []byte(`{"name":"blue","type":"ofctl-cni"}`)
	for _, tc := range []struct {
		name string
		args skel.CmdArgs
		code uint
	}{
		{"ok", skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0", StdinData: conf}, 0},
		{"no container id", skel.CmdArgs{Netns: "/run/netns/x", IfName: "eth0", StdinData: conf}, types.ErrInvalidEnvironmentVariables},
		{"no netns", skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf}, types.ErrInvalidEnvironmentVariables},
		{"bad ifname", skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0/x", StdinData: conf}, types.ErrInvalidEnvironmentVariables},
		{"long ifname", skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "abcdefghijklmnop", StdinData: conf}, types.ErrInvalidEnvironmentVariables},
		{"bad conf", skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0", StdinData: []byte("{")}, types.ErrDecodingFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(&tc.args, true)
			var te *types.Error
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("parse: %v", err)
			case tc.code != 0 && (!errors.As(err, &te) || te.Code != tc.code):
				t.Fatalf("parse: %v, want code %d", err, tc.code)
			}
		})
	}
}

func TestPodName(t *testing.T) {
	for in, want := range map[string]string{
		"": "",
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc": "web-0",
		"K8S_POD_NAME=":        "",
		"FOO=bar":              "",
		"K8S_POD_NAME=a=b;x=y": "a=b",
	} {
		if got := PodName(in); got != want {
			t.Errorf("PodName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAgentErrorCodes(t *testing.T) {
	c := &NetConf{Network: "blue", AgentSocket: "/run/x.sock"}
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{agentapi.ErrUnreachable, types.ErrTryAgainLater},
		{agentapi.ErrUnknownNetwork, types.ErrInvalidNetworkConfig},
		{agentapi.ErrAddressTaken, types.ErrInvalidNetworkConfig},
		{agentapi.ErrExhausted, types.ErrTryAgainLater},
		{agentapi.ErrNotReady, types.ErrTryAgainLater},
		{context.DeadlineExceeded, types.ErrTryAgainLater},
		{errors.New("boom"), types.ErrInternal},
	} {
		var te *types.Error
		if err := agentError(c, tc.err); !errors.As(err, &te) || te.Code != tc.code {
			t.Errorf("agentError(%v) = %v, want code %d", tc.err, err, tc.code)
		}
	}
}

// FuzzParseConfig: any input gives a valid configuration or a *types.Error,
// never a panic; a valid one has every default filled in.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"name":"blue"}`, `{"name":"blue","mtu":1400,"installTimeout":"2s","ipam":{"type":"host-local"}}`,
		`{"name":"a","bridge":"/"}`, `[]`, `null`, `{"network":"\u0000"}`, `{"name":"b","prevResult":{"ips":[]}}`,
		`{"name":"b","logFile":"/var/log/x.log","logLevel":"warn"}`, `{"name":"b","logFile":"/a\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code == 0 || te.Msg == "" {
				t.Fatalf("error %v (%T) is not a CNI error with a code and message", err, err)
			}
			return
		}
		if c.Network == "" || c.Bridge == "" || c.OVSDB == "" || c.AgentSocket == "" || c.InstallWait() <= 0 {
			t.Fatalf("valid configuration without its defaults: %+v", c)
		}
	})
}

// TestExampleConflist: the example in contrib/cni is a valid list whose
// ofctl-cni entry parses with the defaults the README states.
func TestExampleConflist(t *testing.T) {
	files, err := filepath.Glob("../../contrib/cni/*.conflist")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example conflist: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			CNIVersion string            `json:"cniVersion"`
			Name       string            `json:"name"`
			Plugins    []json.RawMessage `json:"plugins"`
		}
		if err := json.Unmarshal(data, &list); err != nil || len(list.Plugins) != 1 {
			t.Fatalf("%s: %v (%d plugins)", f, err, len(list.Plugins))
		}
		c, err := ParseConfig(list.Plugins[0])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Type != "ofctl-cni" || c.Network != "blue" || c.Bridge != DefaultBridge || c.OVSDB != DefaultOVSDB ||
			c.AgentSocket != agentapi.DefaultSocket || c.OpenFlow != "unix:/var/run/openvswitch/br-int.mgmt" ||
			c.LogFile != "/var/log/ofctl-cni.log" {
			t.Errorf("%s: %+v", f, c)
		}
	}
}

// TestFailuresLogged: a refused command is logged with its container.
func TestFailuresLogged(t *testing.T) {
	var buf strings.Builder
	p := &Plugin{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	err := p.Funcs().Add(&skel.CmdArgs{ContainerID: "c9", IfName: "eth0", Netns: "/nope", StdinData: []byte(`{"name":"blue","mtu":1}`)})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("ADD: %v", err)
	}
	if !strings.Contains(buf.String(), "ofctl-cni ADD failed") || !strings.Contains(buf.String(), "container=c9") || !strings.Contains(buf.String(), "invalid mtu") {
		t.Fatalf("log: %q", buf.String())
	}
}

// TestResultVersions: ADD's result converts to every spec version the
// plugin announces (older runtimes keep working), with the address and
// the gateway.
func TestResultVersions(t *testing.T) {
	res := attach.Attachment{Port: "ofabc_l", ContainerID: "c1", Options: attach.Options{Network: "blue", IfName: "eth0",
		IP: netip.MustParsePrefix("10.100.1.2/16"), Gateway: netip.MustParseAddr("10.100.1.1"), MTU: 1458,
		MAC: net.HardwareAddr{0x0a, 0x58, 10, 100, 1, 2}}}
	r := result(&NetConf{}, &skel.CmdArgs{Netns: "/var/run/netns/x"}, res, &agentapi.DNS{Nameservers: []netip.Addr{netip.MustParseAddr("10.100.1.1")}, Search: []string{"blue.cluster"}})
	for _, v := range version.All.SupportedVersions() {
		got, err := r.GetAsVersion(v)
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		var buf bytes.Buffer
		if err := got.PrintTo(&buf); err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		if !strings.Contains(buf.String(), "10.100.1.2/16") || !strings.Contains(buf.String(), `"10.100.1.1"`) {
			t.Errorf("version %s: %s", v, buf.String())
		}
	}
	if len(r.Routes) != 1 || r.Routes[0].GW.String() != "10.100.1.1" || r.Interfaces[0].Mtu != 1458 || r.DNS.Nameservers[0] != "10.100.1.1" {
		t.Errorf("result %+v", r)
	}
}
