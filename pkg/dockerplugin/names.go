package dockerplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// Docker tells a remote driver no container name, so the names of Docker
// endpoints (external_ids:ofctl-agent.name, which the agent's resolver
// answers) come from the Engine API after Join has returned: dockerd holds
// its locks while it calls a driver, so asking it from inside a call could
// deadlock. Namer polls GET /networks/<id>, whose "Containers" map gives
// each endpoint's container name, until the endpoint shows there.

// Defaults of NamerConfig's zero fields.
const (
	// DefaultDockerHost is the Engine API socket.
	DefaultDockerHost = "unix:///run/docker.sock"
	// DefaultNameTimeout: an endpoint that the engine has not shown in its
	// network by then gets no name (a log line says so).
	DefaultNameTimeout = 30 * time.Second
	// DefaultNamePoll is the time between two looks at the engine.
	DefaultNamePoll = 250 * time.Millisecond
	// engineAPIVersion is the Engine API the requests are made in (dockerd
	// 20.10 serves 1.41; later engines serve it too).
	engineAPIVersion = "v1.41"
	// engineTimeout bounds one request to the engine.
	engineTimeout = 5 * time.Second
)

// NamePorts is the part of *ovsdb.Client the Namer uses: the interfaces it
// sees and the background external_ids writer (one key changed, the
// others left alone: published ports written meanwhile are kept).
type NamePorts interface {
	Interfaces() []ovsdb.Interface
	SetExternalIDs(uuid string, ids map[string]string)
}

// NamerConfig wires a Namer.
type NamerConfig struct {
	// DockerHost is the Engine API: unix:///PATH, or http://HOST:PORT
	// (tcp://HOST:PORT is taken as http). Default DefaultDockerHost.
	DockerHost string
	Ports      NamePorts
	Timeout    time.Duration // DefaultNameTimeout if zero
	Poll       time.Duration // DefaultNamePoll if zero
	Logger     *slog.Logger
	// OnInvalid, if set, is told of a container name that is not a DNS
	// label (the agent counts it in ofctl_agent_invalid_inputs_total).
	OnInvalid func(err error)
}

// Namer writes the Docker container's name on the port of each endpoint
// given to Name, in the background. Run does the work.
type Namer struct {
	cfg    NamerConfig
	client *http.Client
	base   string // URL up to the API version, e.g. http://docker/v1.41

	mu      sync.Mutex
	pending map[string]nameJob // by Docker endpoint id
	seq     uint64
	kick    chan struct{}

	names   *prometheus.CounterVec
	errors  prometheus.Counter
	failing bool // the last request to the engine failed (logged once per outage)
}

// nameJob is an endpoint waiting for its name, then, until its
// deadline, watched: a ProgramExternalConnectivity that rewrote the port's
// external_ids from a view read before the name was written would have
// dropped it, and it is written again.
type nameJob struct {
	endpointID, networkID string
	deadline              time.Time
	seq                   uint64 // tells a job asked again (Name) from this one
	name                  string // found in the engine ("" while not)
	seenPort              bool   // its port was in the OVSDB view once
}

// NewNamer checks cfg.
func NewNamer(cfg NamerConfig) (*Namer, error) {
	if cfg.Ports == nil {
		return nil, errors.New("docker names: Ports is required")
	}
	if cfg.DockerHost == "" {
		cfg.DockerHost = DefaultDockerHost
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultNameTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultNamePoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client, base, err := EngineClient(cfg.DockerHost)
	if err != nil {
		return nil, err
	}
	return &Namer{
		cfg: cfg, client: client, base: base + "/" + engineAPIVersion,
		pending: map[string]nameJob{}, kick: make(chan struct{}, 1),
		names: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ofctl_agent_docker_plugin_names_total",
			Help: "Docker endpoints whose container name the plugin looked up in the Engine API, by result: named (written as ofctl-agent.name); invalid (not a DNS label: no name); timeout (the engine did not show the endpoint in time: no name).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ofctl_agent_docker_plugin_engine_errors_total",
			Help: "Requests to the Docker Engine API (docker-host) that failed; endpoints keep working without names.",
		}),
	}, nil
}

// EngineClient returns an HTTP client for the Engine API at host and the
// base URL of its requests.
func EngineClient(host string) (*http.Client, string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, "", fmt.Errorf("docker-host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Host != "" || path == "" || !strings.HasPrefix(path, "/") {
			return nil, "", fmt.Errorf("docker-host %q: want unix:///ABSOLUTE/PATH", host)
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr, Timeout: engineTimeout}, "http://docker", nil
	case "tcp", "http":
		if u.Host == "" {
			return nil, "", fmt.Errorf("docker-host %q: want tcp://HOST:PORT", host)
		}
		return &http.Client{Timeout: engineTimeout}, "http://" + u.Host, nil
	}
	return nil, "", fmt.Errorf("docker-host %q: want unix:///PATH or tcp://HOST:PORT", host)
}

// Name asks for the name of a joined endpoint; it returns at once.
func (n *Namer) Name(endpointID, networkID string) {
	n.mu.Lock()
	n.seq++
	n.pending[endpointID] = nameJob{endpointID: endpointID, networkID: networkID, deadline: time.Now().Add(n.cfg.Timeout), seq: n.seq}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Adopt asks for the names of the plugin's ports that have none (endpoints
// joined while the agent was down, or before the engine answered).
func (n *Namer) Adopt() {
	for _, i := range n.cfg.Ports.Interfaces() {
		ids := i.ExternalIDs
		if ids[endpoint.KeyOwner] != OwnerDocker || ids[endpoint.KeyName] != "" || ids[KeyDockerEndpoint] == "" {
			continue
		}
		n.Name(ids[KeyDockerEndpoint], ids[KeyDockerNetwork])
	}
}

// Run looks the pending endpoints up until ctx ends.
func (n *Namer) Run(ctx context.Context) {
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-t.C:
		}
		n.round(ctx)
	}
}

// round looks at the engine once per network that has endpoints without
// a name yet, and at the OVSDB view for all.
func (n *Namer) round(ctx context.Context) {
	n.mu.Lock()
	jobs := slices.Collect(maps.Values(n.pending))
	n.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	ifaces := map[string]ovsdb.Interface{}
	for _, i := range n.cfg.Ports.Interfaces() {
		if id := i.ExternalIDs[KeyDockerEndpoint]; id != "" && i.ExternalIDs[endpoint.KeyOwner] == OwnerDocker {
			ifaces[id] = i
		}
	}
	engine := map[string]map[string]string{} // network id -> endpoint id -> name
	for _, j := range jobs {
		if j.name != "" {
			continue
		}
		if _, asked := engine[j.networkID]; asked {
			continue
		}
		names, err := n.containers(ctx, j.networkID)
		if ctx.Err() != nil {
			return
		}
		n.engineResult(err)
		engine[j.networkID] = names
	}
	now := time.Now()
	for _, j := range jobs {
		j, done := n.settle(j, engine[j.networkID], ifaces, now)
		n.mu.Lock()
		if cur, ok := n.pending[j.endpointID]; ok && cur.seq == j.seq { // not asked again meanwhile
			if done {
				delete(n.pending, j.endpointID)
			} else {
				n.pending[j.endpointID] = j
			}
		}
		n.mu.Unlock()
	}
}

// settle takes j's name from the engine when it shows the endpoint and
// writes it on the port (again, if it went), and says whether j is done:
// refused, its port gone, or its deadline passed.
func (n *Namer) settle(j nameJob, names map[string]string, ifaces map[string]ovsdb.Interface, now time.Time) (nameJob, bool) {
	iface, hasPort := ifaces[j.endpointID]
	if j.seenPort && !hasPort {
		return j, true // the endpoint is gone (Leave)
	}
	j.seenPort = j.seenPort || hasPort
	if name, found := names[j.endpointID]; j.name == "" && found {
		if err := endpoint.ValidateName(name); err != nil {
			err = fmt.Errorf("docker container %q (endpoint %s): no DNS name: %w", name, j.endpointID, err)
			n.cfg.Logger.Warn("docker container name is not a DNS label: its endpoint gets no name", "container", name,
				"endpoint", j.endpointID, "err", err)
			n.names.WithLabelValues("invalid").Inc()
			if n.cfg.OnInvalid != nil {
				n.cfg.OnInvalid(err)
			}
			return j, true
		}
		j.name = name
		n.names.WithLabelValues("named").Inc()
		n.cfg.Logger.Info("docker endpoint named", "name", name, "endpoint", j.endpointID, "port", iface.Name)
	}
	if j.name != "" && hasPort && iface.ExternalIDs[endpoint.KeyName] != j.name {
		n.cfg.Ports.SetExternalIDs(iface.UUID, map[string]string{endpoint.KeyName: j.name})
	}
	if !now.After(j.deadline) {
		return j, false
	}
	if j.name == "" && j.seenPort {
		n.cfg.Logger.Warn("docker endpoint gets no name: the engine did not show it in its network in time",
			"endpoint", j.endpointID, "network_id", j.networkID, "port", iface.Name, "timeout", n.cfg.Timeout)
		n.names.WithLabelValues("timeout").Inc()
	}
	return j, true
}

// engineResult logs the first failure of an outage, and the recovery.
func (n *Namer) engineResult(err error) {
	switch {
	case err != nil:
		n.errors.Inc()
		if !n.failing {
			n.cfg.Logger.Warn("docker engine API unreachable: Docker endpoints work but get no names until it answers",
				"docker_host", n.cfg.DockerHost, "err", err)
		}
		n.failing = true
	case n.failing:
		n.cfg.Logger.Info("docker engine API answers again", "docker_host", n.cfg.DockerHost)
		n.failing = false
	}
}

// networkInspect is the part of GET /networks/{id} the Namer reads.
type networkInspect struct {
	Containers map[string]struct {
		Name       string
		EndpointID string
	}
}

// containers returns endpoint id -> container name of a Docker network.
// An unknown network (404) is no error: its endpoints wait for their
// deadline.
func (n *Namer) containers(ctx context.Context, networkID string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/networks/"+url.PathEscape(networkID), nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /networks/%s: %w", networkID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case err != nil:
		return nil, fmt.Errorf("GET /networks/%s: %w", networkID, err)
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET /networks/%s: %s: %.200s", networkID, resp.Status, body)
	}
	var ni networkInspect
	if err := json.Unmarshal(body, &ni); err != nil {
		return nil, fmt.Errorf("GET /networks/%s: %w", networkID, err)
	}
	out := make(map[string]string, len(ni.Containers))
	for _, c := range ni.Containers {
		if c.EndpointID != "" {
			out[c.EndpointID] = strings.TrimPrefix(c.Name, "/")
		}
	}
	return out, nil
}

// Describe implements prometheus.Collector.
func (n *Namer) Describe(ch chan<- *prometheus.Desc) {
	n.names.Describe(ch)
	n.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (n *Namer) Collect(ch chan<- prometheus.Metric) {
	n.names.Collect(ch)
	n.errors.Collect(ch)
}
