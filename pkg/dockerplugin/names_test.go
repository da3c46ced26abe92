package dockerplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// fakeEngine serves GET /v1.41/networks/{id} as dockerd does: per network,
// the containers whose endpoints it shows (it shows an endpoint only from
// some moment after Join).
type fakeEngine struct {
	mu       sync.Mutex
	networks map[string]map[string]string // network id -> endpoint id -> container name
	calls    int
	down     bool // answer 500
}

func (e *fakeEngine) show(netID, epID, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.networks[netID] == nil {
		e.networks[netID] = map[string]string{}
	}
	e.networks[netID][epID] = name
}

func (e *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	id, ok := strings.CutPrefix(r.URL.Path, "/v1.41/networks/")
	if r.Method != http.MethodGet || !ok {
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
		return
	}
	if e.down {
		http.Error(w, `{"message":"daemon is busy"}`, http.StatusInternalServerError)
		return
	}
	eps, ok := e.networks[id]
	if !ok {
		http.Error(w, `{"message":"network `+id+` not found"}`, http.StatusNotFound)
		return
	}
	type ctr struct{ Name, EndpointID, IPv4Address string }
	resp := struct {
		Name, ID   string
		Containers map[string]ctr
	}{Name: "blue", ID: id, Containers: map[string]ctr{}}
	for ep, name := range eps {
		resp.Containers["c0ffee"+ep] = ctr{Name: name, EndpointID: ep, IPv4Address: "10.1.0.10/16"}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// fakeNamePorts is the OVSDB side: the plugin's ports, and the writes.
type fakeNamePorts struct {
	mu     sync.Mutex
	ifaces map[string]ovsdb.Interface // by uuid
	writes []string                   // uuid key=value
}

func (p *fakeNamePorts) add(uuid, epID string, ids map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	host, _ := VethNames(epID)
	all := map[string]string{endpoint.KeyOwner: OwnerDocker, KeyDockerEndpoint: epID, KeyDockerNetwork: "net1",
		endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.10"}
	maps.Copy(all, ids)
	p.ifaces[uuid] = ovsdb.Interface{UUID: uuid, Name: host, ExternalIDs: all}
}

func (p *fakeNamePorts) Interfaces() []ovsdb.Interface {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ovsdb.Interface
	for _, i := range p.ifaces {
		out = append(out, i)
	}
	return out
}

func (p *fakeNamePorts) SetExternalIDs(uuid string, ids map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.ifaces[uuid]
	i.ExternalIDs = maps.Clone(i.ExternalIDs)
	for k, v := range ids {
		p.writes = append(p.writes, uuid+" "+k+"="+v)
		i.ExternalIDs[k] = v
	}
	p.ifaces[uuid] = i
}

func (p *fakeNamePorts) name(uuid string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ifaces[uuid].ExternalIDs[endpoint.KeyName]
}

func (p *fakeNamePorts) written() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.writes...)
}

// syncBuffer is a log sink safe for the Namer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// engineOnSocket serves e on a unix socket, as dockerd serves its API.
func engineOnSocket(t *testing.T, e http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(e)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNamer: an endpoint is named once the engine shows it in its network
// (and only then: not before), with the container's name written as the
// one key ofctl-agent.name (the other keys, published ports written
// meanwhile, untouched), and written again when a whole rewrite of the
// port's keys dropped it; a port gone ends the watch; a name that is not a DNS label is refused (log,
// OnInvalid, metric) and nothing written; an endpoint the engine never
// shows is given up at the deadline with a log line; an unreachable engine
// is logged once per outage and counted, and endpoints are named when it
// answers again; Adopt names the plugin's ports that have no name.
func TestNamer(t *testing.T) {
	eng := &fakeEngine{networks: map[string]map[string]string{"net1": {}}}
	host := engineOnSocket(t, eng)
	ports := &fakeNamePorts{ifaces: map[string]ovsdb.Interface{}}
	var logs syncBuffer
	var invalid []error
	var invMu sync.Mutex
	n, err := NewNamer(NamerConfig{DockerHost: host, Ports: ports, Timeout: 2 * time.Second, Poll: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnInvalid: func(err error) {
			invMu.Lock()
			defer invMu.Unlock()
			invalid = append(invalid, err)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Joined, not shown by the engine yet: polled, nothing written.
	ports.add("u1", "ep1", map[string]string{endpoint.KeyPorts: "tcp:8080:80"})
	n.Name("ep1", "net1")
	waitFor(t, "the engine asked twice", func() bool { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.calls >= 2 })
	if w := ports.written(); len(w) != 0 {
		t.Fatalf("written before the engine showed the endpoint: %v", w)
	}
	eng.show("net1", "ep1", "/web")
	waitFor(t, "ep1 named web", func() bool { return ports.name("u1") == "web" })
	if got := ports.Interfaces(); got[0].ExternalIDs[endpoint.KeyPorts] != "tcp:8080:80" {
		t.Errorf("published ports lost: %v", got[0].ExternalIDs)
	}
	if w := ports.written(); len(w) != 1 || w[0] != "u1 "+endpoint.KeyName+"=web" {
		t.Errorf("writes: %v, want the one key", w)
	}
	// ProgramExternalConnectivity rewrote the port's external_ids from a view
	// read before the name was there: written again (within the deadline).
	ports.add("u1", "ep1", map[string]string{endpoint.KeyPorts: "tcp:8080:80"})
	waitFor(t, "ep1 named web again", func() bool { return ports.name("u1") == "web" })
	// Leave: the port goes, and the job with it (no timeout counted below).
	ports.mu.Lock()
	delete(ports.ifaces, "u1")
	ports.mu.Unlock()
	waitFor(t, "ep1 no longer watched", func() bool { n.mu.Lock(); defer n.mu.Unlock(); _, ok := n.pending["ep1"]; return !ok })

	// Docker allows '_' and '.': not a DNS label.
	ports.add("u2", "ep2", nil)
	eng.show("net1", "ep2", "my_db")
	n.Name("ep2", "net1")
	waitFor(t, "my_db refused", func() bool { invMu.Lock(); defer invMu.Unlock(); return len(invalid) == 1 })
	if !errors.Is(invalid[0], endpoint.ErrInvalidName) || !strings.Contains(invalid[0].Error(), "my_db") {
		t.Errorf("refusal: %v", invalid[0])
	}
	if ports.name("u2") != "" {
		t.Errorf("an invalid name was written: %q", ports.name("u2"))
	}

	// Never shown: given up after Timeout.
	ports.add("u3", "ep3", nil)
	n.Name("ep3", "net1")
	waitFor(t, "ep3 given up", func() bool { return strings.Contains(logs.String(), "endpoint=ep3") })
	if v := testutil.ToFloat64(n.names.WithLabelValues("timeout")); v != 1 {
		t.Errorf("names_total{result=timeout} = %v, want 1", v)
	}

	// The engine fails: logged once, counted; named once it answers.
	eng.mu.Lock()
	eng.down = true
	eng.mu.Unlock()
	ports.add("u4", "ep4", nil)
	n.Name("ep4", "net1")
	waitFor(t, "3 engine errors", func() bool { return testutil.ToFloat64(n.errors) >= 3 })
	if c := strings.Count(logs.String(), "docker engine API unreachable"); c != 1 {
		t.Errorf("unreachable logged %d times, want once:\n%s", c, logs.String())
	}
	eng.show("net1", "ep4", "api")
	eng.mu.Lock()
	eng.down = false
	eng.mu.Unlock()
	waitFor(t, "ep4 named api", func() bool { return ports.name("u4") == "api" })
	if !strings.Contains(logs.String(), "answers again") {
		t.Errorf("no recovery log line:\n%s", logs.String())
	}

	// Adopt: ports without a name (the agent restarted after Join); my_db
	// is looked up, and refused, again.
	ports.add("u5", "ep5", nil)
	eng.show("net1", "ep5", "late")
	n.Adopt()
	waitFor(t, "ep5 named late", func() bool { return ports.name("u5") == "late" })
	if v := testutil.ToFloat64(n.names.WithLabelValues("named")); v != 3 {
		t.Errorf("names_total{result=named} = %v, want 3", v)
	}
	if v := testutil.ToFloat64(n.names.WithLabelValues("invalid")); v != 2 {
		t.Errorf("names_total{result=invalid} = %v, want 2", v)
	}
}

// TestNamerEngineAbsent: no socket at all: counted, logged once, Run
// stops with its context.
func TestNamerEngineAbsent(t *testing.T) {
	ports := &fakeNamePorts{ifaces: map[string]ovsdb.Interface{}}
	var logs syncBuffer
	n, err := NewNamer(NamerConfig{DockerHost: "unix://" + filepath.Join(t.TempDir(), "none.sock"), Ports: ports,
		Timeout: time.Hour, Poll: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	ports.add("u1", "ep1", nil)
	n.Name("ep1", "net1")
	waitFor(t, "5 engine errors", func() bool { return testutil.ToFloat64(n.errors) >= 5 })
	cancel()
	<-done
	if c := strings.Count(logs.String(), "docker engine API unreachable"); c != 1 || !strings.Contains(logs.String(), "none.sock") {
		t.Errorf("want one log line naming the socket:\n%s", logs.String())
	}
}

// TestEngineClient: the docker-host forms.
func TestEngineClient(t *testing.T) {
	for _, tc := range []struct {
		host, base string
		ok         bool
	}{
		{"unix:///run/docker.sock", "http://docker", true},
		{"tcp://127.0.0.1:2375", "http://127.0.0.1:2375", true},
		{"http://10.0.0.1:2375", "http://10.0.0.1:2375", true},
		{"unix://run/docker.sock", "", false},
		{"/run/docker.sock", "", false},
		{"tcp://", "", false},
		{"ssh://host", "", false},
		{"unix:// bad\x7f", "", false},
	} {
		_, base, err := EngineClient(tc.host)
		if (err == nil) != tc.ok || base != tc.base {
			t.Errorf("EngineClient(%q) = %q, %v; want base %q, ok %v", tc.host, base, err, tc.base, tc.ok)
		}
	}
}
