package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
)

const testCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
  - name: red
    vni: 200
    subnet: 10.200.0.0/16
hosts:
  - name: node-a
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttachArgsOffline: without the agent (--ip, --wait 0) the options
// come from the flags and the cluster file, as before the agent served
// addresses.
func TestAttachArgsOffline(t *testing.T) {
	cf := writeFile(t, "cluster.yaml", testCluster)
	bad := writeFile(t, "bad.yaml", "networks:\n  - name: blue\n    vni: 0\n    subnet: 10.1.0.0/16\n  - name: x\n")
	none := filepath.Join(t.TempDir(), "absent.yaml")
	ns := "/var/run/netns/c1"
	tests := []struct {
		name string
		args []string
		code int    // exitCode of the error, 0 for none
		err  string // part of the error
		ip   string // want Options.IP ("" none)
	}{
		{"explicit cidr with cluster", []string{"--cluster-file", cf, "--node-name", "node-a", "--network", "blue", "--ip", "10.100.1.5/16", ns}, 0, "", "10.100.1.5/16"},
		{"prefix other than the network's", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.5/24", ns}, 2,
			"--ip 10.100.1.5/24: network blue is 10.100.0.0/16, so the prefix length is /16 (a /24 route would not reach all of blue); give 10.100.1.5 or 10.100.1.5/16", ""},
		{"another host's range", []string{"--cluster-file", cf, "--node-name", "node-b", "--network", "blue", "--ip", "10.100.1.5", ns}, 2,
			`--ip 10.100.1.5 is inside host node-a's range 10.100.1.0/24 of network blue: that host hands out its addresses and the others send them there (this host is "node-b": --node-name)`, ""},
		{"bare ip takes subnet prefix", []string{"--cluster-file", cf, "--node-name", "node-a", "--network", "blue", "--ip", "10.100.1.5", ns}, 0, "", "10.100.1.5/16"},
		{"flags after target", []string{ns, "--cluster-file", cf, "--network", "blue", "--ip", "10.100.9.9"}, 0, "", "10.100.9.9/16"},
		{"bare ip, another network", []string{"--cluster-file", cf, "--network", "red", "--ip", "10.200.0.9", ns}, 0, "", "10.200.0.9/16"},
		{"no cluster file, cidr", []string{"--cluster-file", none, "--network", "green", "--ip", "10.1.2.3/24", ns}, 1, "no such file", ""},
		{"default cluster file absent", []string{"--network", "green", "--ip", "10.1.2.3/24", ns}, 0, "", "10.1.2.3/24"},
		{"missing network", []string{"--cluster-file", cf, "--ip", "10.100.1.5/24", ns}, 2, "--network is required", ""},
		{"missing target", []string{"--cluster-file", cf, "--network", "blue"}, 2, "missing TARGET", ""},
		{"two targets", []string{"--cluster-file", cf, "--network", "blue", ns, "/var/run/netns/c2"}, 2, "want one TARGET", ""},
		{"pid and path", []string{"--cluster-file", cf, "--network", "blue", "--pid", "42", ns}, 2, "either --pid or TARGET", ""},
		{"negative pid", []string{"--cluster-file", cf, "--network", "blue", "--pid", "-4"}, 2, "want a process id", ""},
		{"unknown flag", []string{"--ipaddress", "10.1.1.1/24", ns}, 2, "flag provided but not defined", ""},
		{"bad mtu syntax", []string{"--network", "blue", "--mtu", "big", ns}, 2, "invalid value", ""},
		{"bad ip", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1", ns}, 2, "not an IPv4 address", ""},
		{"bad cidr", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.5/33", ns}, 2, "want an IPv4 address with prefix", ""},
		{"ipv6", []string{"--cluster-file", cf, "--network", "blue", "--ip", "fd00::5/64", ns}, 2, "want an IPv4 address", ""},
		{"ip outside subnet", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.101.1.5/16", ns}, 2, "outside network blue (10.100.0.0/16)", ""},
		{"bare ip without cluster", []string{"--network", "green", "--ip", "10.1.2.3", "--cluster-file", none, ns}, 1, "no such file", ""},
		{"network not in cluster", []string{"--cluster-file", cf, "--network", "green", "--ip", "10.1.2.3/24", ns}, 2, `network "green" is not in the cluster file`, ""},
		{"invalid cluster file", []string{"--cluster-file", bad, "--network", "blue", "--ip", "10.100.1.5/24", ns}, 1, "cluster file", ""},
		{"bad mac", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.5/24", "--mac", "0a:58", ns}, 2, "--mac", ""},
		{"bad gateway", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.5/24", "--gateway", "x", ns}, 2, "--gateway", ""},
		{"bad tx offload", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.5/24", "--tx-offload", "no", ns}, 2, `--tx-offload "no": want auto, on or off`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, alloc, err := prepareArgs(t, append(tc.args, "--wait", "0"))
			if got := codeOf(err); got != tc.code || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v (exit %d), want exit %d with %q", err, got, tc.code, tc.err)
			}
			if err != nil {
				return
			}
			if got := prefixText(opts.IP); got != tc.ip || alloc != nil || opts.Gateway.IsValid() {
				t.Errorf("ip %s, allocator %v, gateway %v; want %q, none, none", got, alloc, opts.Gateway, tc.ip)
			}
		})
	}
}

// fakeAPIAgent serves one network, blue, on a local API socket.
type fakeAPIAgent struct{}

var fakeBlue = agentapi.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.100.0.0/16"), Gateway: netip.MustParseAddr("10.100.1.1"), MTU: 1458}

func (fakeAPIAgent) Status() agentapi.Status { return agentapi.Status{Ready: true} }
func (fakeAPIAgent) Network(name string) (agentapi.Network, error) {
	if name != "blue" {
		return agentapi.Network{}, fmt.Errorf("%w %q: not in the cluster view", agentapi.ErrUnknownNetwork, name)
	}
	return fakeBlue, nil
}
func (fakeAPIAgent) Allocate(context.Context, agentapi.AllocateRequest) (agentapi.Allocation, error) {
	return agentapi.Allocation{}, errors.New("not used")
}
func (fakeAPIAgent) Release(context.Context, agentapi.ReleaseRequest) error { return nil }
func (fakeAPIAgent) Allocations(context.Context, string, string) ([]agentapi.Allocated, error) {
	return nil, nil
}

func serveFakeAgent(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: agentapi.Handler(fakeAPIAgent{}, agentapi.HandlerOptions{}), ReadHeaderTimeout: time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

// TestAttachArgsAgent: with the agent, the subnet, gateway and MTU are its
// answer's unless given, and it is the allocator; without it, attach
// refuses unless --ip and --wait 0.
func TestAttachArgsAgent(t *testing.T) {
	sock := serveFakeAgent(t)
	gone := filepath.Join(t.TempDir(), "gone.sock")
	ns := "/var/run/netns/c1"
	tests := []struct {
		name    string
		args    []string
		code    int
		err     string
		ip, gw  string // want Options.IP, Gateway ("": none)
		mtu     int
		agentOK bool // the agent is the allocator
	}{
		{"defaults from the agent", []string{"--agent-socket", sock, "--network", "blue", ns}, 0, "", "", "10.100.1.1", 1458, true},
		{"--ip bare takes the agent's prefix", []string{"--agent-socket", sock, "--network", "blue", "--ip", "10.100.1.5", ns}, 0, "", "10.100.1.5/16", "10.100.1.1", 1458, true},
		{"--gateway none, --mtu", []string{"--agent-socket", sock, "--network", "blue", "--gateway", "none", "--mtu", "1400", ns}, 0, "", "", "", 1400, true},
		{"--gateway IP", []string{"--agent-socket", sock, "--network", "blue", "--gateway", "10.100.1.9", ns}, 0, "", "", "10.100.1.9", 1458, true},
		{"--ip with another prefix", []string{"--agent-socket", sock, "--network", "blue", "--ip", "10.100.1.5/24", ns}, 2, "so the prefix length is /16", "", "", 0, false},
		{"--ip outside", []string{"--agent-socket", sock, "--network", "blue", "--ip", "10.9.0.1", ns}, 2, "--ip 10.9.0.1/16 is outside network blue (10.100.0.0/16)", "", "", 0, false},
		{"unknown network", []string{"--agent-socket", sock, "--network", "green", ns}, 1, `network green: agent: unknown network "green": not in the cluster view`, "", "", 0, false},
		{"no agent, no --ip", []string{"--agent-socket", gone, "--network", "blue", ns}, 1,
			"the agent is not reachable on " + gone + ": is the agent running? (systemctl status ofctl-agent; --agent-socket is its api-socket): it allocates the address and installs the port; give --ip and --wait 0 to attach without it", "", "", 0, false},
		{"no agent, --ip but waiting", []string{"--agent-socket", gone, "--network", "blue", "--ip", "10.100.1.5/16", ns}, 1, "is the agent running?", "", "", 0, false},
		{"no agent, --ip, --wait 0", []string{"--agent-socket", gone, "--network", "blue", "--ip", "10.100.1.5/16", "--wait", "0", ns}, 0, "", "10.100.1.5/16", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, alloc, err := prepareArgs(t, tc.args)
			if got := codeOf(err); got != tc.code || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v (exit %d), want exit %d with %q", err, got, tc.code, tc.err)
			}
			if err != nil {
				return
			}
			_, isAgent := alloc.(*attach.AgentAllocator)
			if prefixText(opts.IP) != tc.ip || addrText(opts.Gateway) != tc.gw || opts.MTU != tc.mtu || isAgent != tc.agentOK {
				t.Errorf("ip %v gateway %v mtu %d agent allocator %v; want %q %q %d %v", opts.IP, opts.Gateway, opts.MTU, isAgent, tc.ip, tc.gw, tc.mtu, tc.agentOK)
			}
		})
	}
}

// prepareArgs is runAttach up to the options; the default cluster file
// path is replaced by one that does not exist, the default agent socket by
// one nobody serves.
func prepareArgs(t *testing.T, args []string) (attach.Options, attach.Allocator, error) {
	a, err := parseAttach(args, io.Discard)
	if err != nil {
		return attach.Options{}, nil, err
	}
	if !a.clusterFileSet {
		a.clusterFile = "/nonexistent/ofctl-agent/cluster.yaml"
	}
	if a.agentSocket == agentapi.DefaultSocket {
		a.agentSocket = filepath.Join(t.TempDir(), "none.sock")
	}
	o, alloc, _, err := a.prepare(context.Background(), func(string) {})
	return o, alloc, err
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func codeOf(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func TestAttachTxOffloadFlag(t *testing.T) {
	for flagValue, want := range map[string]attach.TxOffload{"": attach.TxOffloadAuto, "auto": attach.TxOffloadAuto,
		"on": attach.TxOffloadOn, "off": attach.TxOffloadOff} {
		args := []string{"--network", "blue", "--ip", "10.1.2.3/24", "/var/run/netns/c1"}
		if flagValue != "" {
			args = append(args, "--tx-offload", flagValue)
		}
		if o, _, err := prepareArgs(t, append(args, "--wait", "0")); err != nil || o.TxOffload != want {
			t.Errorf("--tx-offload %q: %q, %v; want %q", flagValue, o.TxOffload, err, want)
		}
	}
	res := newAttachResult(attach.Attachment{TxChecksum: "off"}, attach.Container{})
	if res.TxChecksum != "off" || txText(res.TxChecksum) != ", tx checksum off" || txText("") != "" {
		t.Errorf("result %+v, text %q", res, txText(res.TxChecksum))
	}
}

func TestDetachArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		err  string
		want target
		all  bool
	}{
		{"path", []string{"/var/run/netns/c1", "--ifname", "eth2"}, 0, "", target{path: "/var/run/netns/c1"}, false},
		{"all", []string{"--all", "/var/run/netns/c1"}, 0, "", target{path: "/var/run/netns/c1"}, true},
		{"pid", []string{"--pid", "77"}, 0, "", target{pid: 77}, false},
		{"docker name", []string{"web-1"}, 0, "", target{docker: "web-1"}, false},
		{"all and ifname", []string{"--all", "--ifname", "eth1", "web-1"}, 2, "not both", target{}, false},
		{"no target", []string{"--all"}, 2, "missing TARGET", target{}, false},
		{"pid and name", []string{"--pid", "7", "web-1"}, 2, "not both", target{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := parseDetach(tc.args, io.Discard)
			if got := codeOf(err); got != tc.code || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v (exit %d), want exit %d with %q", err, got, tc.code, tc.err)
			}
			if err == nil && (d.target != tc.want || d.all != tc.all) {
				t.Errorf("target %+v all %v, want %+v %v", d.target, d.all, tc.want, tc.all)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []command{runAttach, runDetach} {
		var out, errb bytes.Buffer
		if code := cmd(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
			t.Errorf("-h: exit %d", code)
		}
		for _, want := range []string{"usage: ofctl-agent", "-bridge BRIDGE", `(default "br-int")`, "-ifname NAME", `(default "eth1")`} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("usage lacks %q:\n%s", want, errb.String())
			}
		}
	}
}

func TestRunAttachExitCodes(t *testing.T) {
	cf := writeFile(t, "cluster.yaml", testCluster)
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"usage", []string{"--cluster-file", cf, "/var/run/netns/x"}, 2, "ofctl-agent attach: --network is required\nrun 'ofctl-agent attach -h' for usage\n"},
		{"outside subnet", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.9.0.1/24", "/x/y"}, 2, "ofctl-agent attach: --ip 10.9.0.1/24 is outside network blue (10.100.0.0/16)\n"},
		{"no docker", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.9", "--node-name", "node-a", "web-1"}, 1, "docker engine not reachable at"},
		{"not a namespace", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.9", "--node-name", "node-a", cf}, 1, "not a namespace file"},
		{"bad ovsdb endpoint", []string{"--cluster-file", cf, "--network", "blue", "--ip", "10.100.1.9", "--node-name", "node-a", "--ovsdb", "/run/db.sock", "--pid", fmt.Sprint(os.Getpid())}, 2, "want unix:PATH or tcp:HOST:PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			// No agent: attach works offline with --ip and --wait 0.
			args := append(tc.args, "--wait", "0", "--agent-socket", filepath.Join(t.TempDir(), "none.sock"))
			code := runAttach(context.Background(), args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.err) || out.Len() != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, out.String(), errb.String(), tc.code, tc.err)
			}
			if lines := strings.Count(errb.String(), "\n"); lines > 2 {
				t.Errorf("error takes %d lines:\n%s", lines, errb.String())
			}
		})
	}
}

func TestRunDetachNoOVSDB(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"--timeout", "300ms", "--ovsdb", "unix:" + filepath.Join(t.TempDir(), "db.sock"), "/var/run/netns/gone"}
	if code := runDetach(context.Background(), args, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "not connected to ovsdb") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line saying not connected", errb.String())
	}
}

func TestOneLine(t *testing.T) {
	err := fmt.Errorf("cluster file: %w", errors.Join(errors.New("line 2: bad"), errors.New("line 5: worse")))
	var errb bytes.Buffer
	if code := fail(&errb, "attach", err); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if got, want := errb.String(), "ofctl-agent attach: cluster file: line 2: bad; line 5: worse\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	errb.Reset()
	if code := fail(&errb, "attach", &attach.OptionError{Field: "mtu", Value: "9", Reason: "want 68..65535"}); code != 2 {
		t.Errorf("option error: exit %d, want 2", code)
	}
}

// An address in no host's range is allowed (this host alone reaches it in
// the static view): attach says so.
func TestAttachWarnsOutsideEveryRange(t *testing.T) {
	cf := writeFile(t, "cluster.yaml", testCluster)
	for _, c := range []struct {
		ip, network, warning string
	}{
		{"10.100.9.9", "blue", "10.100.9.9 is in no host's range of network blue: other hosts will not reach it (static cluster view)"},
		{"10.100.1.9", "blue", ""}, // node-a's own range
		{"10.200.1.9", "red", ""},  // no host has a range in red: nothing to warn about
	} {
		a, err := parseAttach([]string{"--cluster-file", cf, "--node-name", "node-a", "--network", c.network, "--ip", c.ip, "--gateway", "none", "/var/run/netns/c1"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		view, err := loadCluster(cf, true)
		if err != nil {
			t.Fatal(err)
		}
		var warnings []string
		if _, err := a.options(view, func(w string) { warnings = append(warnings, w) }); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(warnings, "; "); got != c.warning {
			t.Errorf("--ip %s: warnings %q, want %q", c.ip, got, c.warning)
		}
	}
}

// TestAttachPublishFlag: --publish in Docker's syntax, repeatable, becomes
// the options' ports (external_ids ofctl-agent.ports); a malformed or
// repeated host port is a usage error.
func TestAttachPublishFlag(t *testing.T) {
	base := []string{"--network", "blue", "--ip", "10.1.2.3/24", "--wait", "0", "/var/run/netns/c1"}
	tests := []struct {
		name    string
		publish []string
		want    string // FormatPorts of the options
		err     string
	}{
		{"none", nil, "", ""},
		{"tcp by default", []string{"8080:80"}, "tcp:8080:80", ""},
		{"repeated, both protocols", []string{"8080:80/tcp", "5353:53/udp", "5353:53/tcp"}, "tcp:8080:80,udp:5353:53,tcp:5353:53", ""},
		{"upper case protocol", []string{"8080:80/TCP"}, "tcp:8080:80", ""},
		{"an address is not taken", []string{"0.0.0.0:8080:80"}, "", "want HOSTPORT:PORT[/tcp|/udp]"},
		{"one port", []string{"8080"}, "", "want HOSTPORT:PORT[/tcp|/udp]"},
		{"sctp", []string{"8080:80/sctp"}, "", `protocol "sctp", want tcp or udp`},
		{"port 0", []string{"0:80"}, "", "is not a port number 1-65535"},
		{"port too large", []string{"8080:65536"}, "", "is not a port number 1-65535"},
		{"host port twice", []string{"8080:80", "8080:81/tcp"}, "", "host port tcp/8080 given twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(base)
			for _, p := range tc.publish {
				args = append(args, "--publish", p)
			}
			o, _, err := prepareArgs(t, args)
			switch {
			case tc.err != "":
				if codeOf(err) != 2 || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v (exit %d), want a usage error with %q", err, codeOf(err), tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case endpoint.FormatPorts(o.Ports) != tc.want:
				t.Fatalf("ports %q, want %q", endpoint.FormatPorts(o.Ports), tc.want)
			}
		})
	}
	res := newAttachResult(attach.Attachment{Options: attach.Options{Ports: []endpoint.Published{{Proto: endpoint.TCP, HostPort: 8080, Port: 80}}}}, attach.Container{})
	if res.Ports != "tcp:8080:80" || portsText(res.Ports) != ", publishes tcp:8080:80" || portsText("") != "" {
		t.Errorf("result %+v", res)
	}
}

func TestIsGatewayPort(t *testing.T) {
	for _, tc := range []struct {
		port attach.Port
		want bool
	}{
		{attach.Port{Name: "ofgw-blue", ExternalIDs: map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyRole: endpoint.RoleGateway}}, true},
		{attach.Port{Name: "ofgw-blue"}, true},
		{attach.Port{Name: "other", ExternalIDs: map[string]string{endpoint.KeyRole: endpoint.RoleGateway}}, true},
		{attach.Port{Name: "ofgw-x", ExternalIDs: map[string]string{endpoint.KeyNetwork: "blue"}}, false}, // an endpoint
		{attach.Port{Name: "of1234_l", ExternalIDs: map[string]string{endpoint.KeyNetwork: "blue"}}, false},
		{attach.Port{Name: "gre0"}, false},
	} {
		if got := isGatewayPort(tc.port); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.port, got, tc.want)
		}
	}
}
