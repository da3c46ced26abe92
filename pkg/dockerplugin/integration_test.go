package dockerplugin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzServe from the calls a real dockerd sends in TestDockerRun")

const clusterYAML = `networks:
  - name: blue
    vni: 100
    subnet: 10.1.0.0/16
  - name: red
    vni: 200
    subnet: 10.2.0.0/24
hosts:
  - name: host-a
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.1.1.0/24, red: 10.2.0.0/25 }
`

// realBed is the plugin served on a node's Docker plugin dir, with the
// cluster view read by the static source from a file, and backends made
// for the test: addresses from the host's range of the view (gateway: its
// first address), veth pairs made with ip in the node's namespace.
type realBed struct {
	node   *testbed.Node
	docker *testbed.Docker
	srv    *Server
	eps    *vethEndpoints
	rec    *recorder
}

func startRealBed(t *testing.T) *realBed {
	t.Helper()
	testbed.RequireDocker(t)
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(clusterYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	n := testbed.NewNode(t, "dp")
	d := testbed.StartDocker(t, n)
	v, _ := src.Current()
	host, _ := v.Host("host-a")
	b := &realBed{node: n, docker: d, eps: &vethEndpoints{node: n}, rec: &recorder{}}
	b.srv, err = New(Config{
		StateFile: filepath.Join(t.TempDir(), "docker-networks.json"),
		View:      src.Current,
		Addresses: &rangeAddresses{ranges: host.Ranges, held: map[netip.Addr]bool{}},
		Endpoints: b.eps,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(filepath.Join(d.PluginDir(), "ofctl-agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: b.rec.wrap(b.srv.Handler())}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return b
}

// TestDockerNetworkCreate: a real dockerd activates the plugin, a network
// the view does not know is refused with the plugin's message, a known one
// is made with the view's subnet (docker network inspect).
func TestDockerNetworkCreate(t *testing.T) {
	b := startRealBed(t)
	d := b.docker
	cases := []struct{ args, want string }{
		{"--ipam-opt network=purple purple", `IpamDriver.RequestPool: ofctl-agent: network "purple" is not in the cluster view (networks: blue 10.1.0.0/16, red 10.2.0.0/24)`},
		{"-o network=blue blue", "ofctl-agent: which network of the cluster view? give --ipam-opt network=NAME"},
		{"--ipam-opt network=blue --subnet 10.9.0.0/24 blue", `ofctl-agent: subnet 10.9.0.0/24 does not match network "blue" of the cluster view (10.1.0.0/16)`},
		{"--ipam-opt network=blue -o mtu=1400 blue", "NetworkDriver.CreateNetwork: ofctl-agent: unknown option -o mtu=1400"},
	}
	for _, c := range cases {
		args := append([]string{"network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent"}, strings.Fields(c.args)...)
		out, err := d.RunErr(args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: err %v, output:\n%s\nwant it to contain %q", strings.Join(args, " "), err, out, c.want)
		}
	}
	if got := b.rec.count("Plugin.Activate"); got != 1 {
		t.Fatalf("dockerd activated the plugin %d times", got)
	}
	d.Run(t, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=blue", "blue")
	d.Run(t, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--subnet", "10.2.0.0/24", "red")
	for _, c := range []struct{ name, want string }{
		{"blue", `ofctl-agent [{"Subnet":"10.1.0.0/16","Gateway":"10.1.1.1"}]`},
		{"red", `ofctl-agent [{"Subnet":"10.2.0.0/24"}]`}, // with --subnet Docker shows the user's config only
	} {
		out := strings.TrimSpace(d.Run(t, "network", "inspect", "--format", "{{.Driver}} {{json .IPAM.Config}}", c.name))
		if out != c.want {
			t.Errorf("docker network inspect %s: %s, want %s", c.name, out, c.want)
		}
	}
	if n := b.srv.Networks(); len(n) != 2 {
		t.Fatalf("plugin bindings: %+v", n)
	}
	d.Run(t, "network", "rm", "blue", "red")
	if n := b.srv.Networks(); len(n) != 0 {
		t.Fatalf("bindings after docker network rm: %+v", n)
	}
}

// TestDockerRun runs containers on a plugin network (veths made by the
// test's backend): the container gets the allocator's address, the MAC
// derived from it (or --mac-address, through the Engine API) and the
// gateway as default route; -p reaches Publish. With -update-seeds it
// writes the calls dockerd sent as the fuzz seeds.
func TestDockerRun(t *testing.T) {
	b := startRealBed(t)
	d := b.docker
	img := d.Image(t)
	d.Run(t, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=blue", "blue")
	d.Run(t, "network", "create", "-d", "ofctl-agent", "--ipam-driver", "ofctl-agent", "--ipam-opt", "network=red", "red")

	out := d.Run(t, "run", "--rm", "--network", "blue", "-p", "8080:80", img, "sh", "-c", "ip -o -4 addr show eth0; ip link show eth0; ip route")
	for _, want := range []string{"inet 10.1.1.2/16", "link/ether 0a:58:0a:01:01:02", "default via 10.1.1.1 dev eth0"} {
		if !strings.Contains(out, want) {
			t.Errorf("container on blue: %q missing in:\n%s", want, out)
		}
	}
	if got := b.eps.calls(); !strings.Contains(got, "publish [8080:80/tcp]") || !strings.Contains(got, "unpublish") {
		t.Errorf("published ports did not reach the backend: %s", got)
	}

	// --mac-address needs Engine API 1.44 from the 28.x client: the API.
	st, body, err := d.API("POST", "/containers/create?name=m1", map[string]any{
		"Image": img, "Cmd": []string{"sleep", "600"}, "MacAddress": "0a:58:0a:01:01:63",
		"HostConfig": map[string]any{"NetworkMode": "blue"},
	})
	if err != nil || st != http.StatusCreated {
		t.Fatalf("create with MacAddress: %d %s %v", st, body, err)
	}
	d.Run(t, "start", "m1")
	if out := d.Run(t, "exec", "m1", "cat", "/sys/class/net/eth0/address"); strings.TrimSpace(out) != "0a:58:0a:01:01:63" {
		t.Errorf("--mac-address: eth0 has %s", out)
	}
	d.Run(t, "network", "connect", "red", "m1")
	if out := d.Run(t, "exec", "m1", "ip", "-o", "-4", "addr"); !strings.Contains(out, "inet 10.2.0.") {
		t.Errorf("after network connect red: %s", out)
	}
	d.Run(t, "network", "disconnect", "red", "m1")
	d.Run(t, "stop", "-t", "1", "m1")
	d.Run(t, "start", "m1")
	d.Run(t, "rm", "-f", "m1")
	d.Run(t, "network", "rm", "blue", "red")

	if left := b.eps.live(); len(left) > 0 {
		t.Errorf("veths left in the node after docker rm: %v", left)
	}
	for _, c := range []string{callCreateEndpoint, callJoin, callLeave, callDeleteEndpoint, callProgramExternal, callRevokeExternal,
		callEndpointOperInfo, callRequestAddress, callReleaseAddress, callReleasePool, callDeleteNetwork} {
		if b.rec.count(c) == 0 {
			t.Errorf("dockerd sent no %s", c)
		}
	}
	if bad := b.rec.failed(); len(bad) > 0 {
		t.Errorf("calls refused: %v", bad)
	}
	if *updateSeeds {
		b.rec.writeSeeds(t, filepath.Join("testdata", "fuzz", "FuzzServe"))
	}
}

// rangeAddresses is a test allocator: the host's range of each network,
// gateway first.
type rangeAddresses struct {
	mu     sync.Mutex
	ranges map[string]netip.Prefix
	held   map[netip.Addr]bool
}

func (r *rangeAddresses) Gateway(network string) (netip.Addr, error) {
	p, ok := r.ranges[network]
	if !ok {
		return netip.Addr{}, fmt.Errorf("no range in %s", network)
	}
	return p.Addr().Next(), nil
}

func (r *rangeAddresses) Reserve(network string, addr netip.Addr) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.ranges[network]
	gw, _ := r.Gateway(network)
	if addr.IsValid() {
		if r.held[addr] || !p.Contains(addr) || addr == gw {
			return addr, fmt.Errorf("%s: %w", addr, ErrAddressUnavailable)
		}
		r.held[addr] = true
		return addr, nil
	}
	for a := gw.Next(); p.Contains(a); a = a.Next() {
		if !r.held[a] {
			r.held[a] = true
			return a, nil
		}
	}
	return addr, ErrExhausted
}

func (r *rangeAddresses) Own(string, netip.Addr, string) {} // owners are not tracked here

func (r *rangeAddresses) Release(network string, addr netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.held, addr)
	return nil
}

// vethEndpoints makes the veth pair Docker expects in dockerd's namespace
// (the node's) with ip; the host end stays there, unattached.
type vethEndpoints struct {
	callLog
	node *testbed.Node
}

func (v *vethEndpoints) names(id string) (string, string) { return "vd" + id[:8], "vh" + id[:8] }

func (v *vethEndpoints) Join(ctx context.Context, ep Endpoint) (Joined, error) {
	c, h := v.names(ep.ID)
	if out, err := v.node.NS.Exec("ip", "link", "add", c, "type", "veth", "peer", "name", h); err != nil {
		return Joined{}, fmt.Errorf("%v: %s", err, out)
	}
	if out, err := v.node.NS.Exec("ip", "link", "set", h, "up"); err != nil {
		return Joined{}, fmt.Errorf("%v: %s", err, out)
	}
	v.record("join " + ep.Network)
	return Joined{Interface: c}, nil
}

func (v *vethEndpoints) Leave(ctx context.Context, id string) error {
	_, h := v.names(id)
	_, _ = v.node.NS.Exec("ip", "link", "del", h) // gone with the container's namespace, usually
	v.record("leave")
	return nil
}

func (v *vethEndpoints) Publish(ctx context.Context, id string, ports []PortMapping) error {
	v.record(fmt.Sprintf("publish %v", ports))
	return nil
}

func (v *vethEndpoints) Unpublish(ctx context.Context, id string) error {
	v.record("unpublish")
	return nil
}

// live lists the veths of this backend still in the node.
func (v *vethEndpoints) live() []string {
	out, _ := v.node.NS.Exec("ip", "-o", "link", "show")
	var left []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && (strings.HasPrefix(f[1], "vd") || strings.HasPrefix(f[1], "vh")) {
			left = append(left, f[1])
		}
	}
	return left
}

// recorder keeps every call dockerd sent and the status it got.
type recorder struct {
	mu    sync.Mutex
	calls []recorded
}

type recorded struct {
	call   string
	body   []byte
	status int
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, req)
		r.mu.Lock()
		r.calls = append(r.calls, recorded{strings.TrimPrefix(req.URL.Path, "/"), body, sw.status})
		r.mu.Unlock()
	})
}

func (r *recorder) count(call string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.call == call {
			n++
		}
	}
	return n
}

func (r *recorder) failed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if c.status != http.StatusOK {
			out = append(out, fmt.Sprintf("%s %d %s", c.call, c.status, c.body))
		}
	}
	return out
}

// writeSeeds writes up to two distinct bodies per call in go test fuzz's
// corpus format.
func (r *recorder) writeSeeds(t *testing.T, dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seen := map[string][]string{}
	for _, c := range r.calls {
		b := strings.TrimSpace(string(c.body))
		if len(seen[c.call]) >= 2 || slices.Contains(seen[c.call], b) {
			continue
		}
		seen[c.call] = append(seen[c.call], b)
		text := fmt.Sprintf("go test fuzz v1\nstring(%q)\n[]byte(%q)\n", c.call, b)
		name := fmt.Sprintf("dockerd-%s-%d", c.call, len(seen[c.call]))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
