package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultDockerSocket is where the Docker Engine API listens by default.
const DefaultDockerSocket = "/var/run/docker.sock"

// Errors of Docker target resolution, for errors.Is.
var (
	ErrDockerUnavailable = errors.New("docker engine not reachable")
	ErrNoSuchContainer   = errors.New("no such container")
	ErrNotRunning        = errors.New("container is not running")
)

// Docker resolves container names and ids through the Engine API on a unix
// socket (GET /containers/{id}/json), as the docker CLI does.
type Docker struct {
	Socket string
	client *http.Client
}

// NewDocker returns a client for the API socket; "" means the socket named
// by DOCKER_HOST (unix:// only) or DefaultDockerSocket.
func NewDocker(socket string) *Docker {
	if socket == "" {
		socket = DefaultDockerSocket
		if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
			socket = h
		}
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &Docker{Socket: socket, client: &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}}
}

// inspect is the part of the container inspect answer we use.
type inspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State *struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
}

// Resolve finds a running container by name or (prefix of) id and opens
// its network namespace (through its process, /proc/PID/ns/net). The
// container is inspected again once the namespace is open: had it exited
// in between, the PID could be another process's. Lookup serves Detach,
// which needs only the id. Close the container when done.
func (d *Docker) Resolve(ctx context.Context, nameOrID string) (Container, error) {
	in, err := d.running(ctx, nameOrID)
	if err != nil {
		return Container{}, err
	}
	c, err := PIDTarget(in.State.Pid)
	if err != nil {
		return Container{}, fmt.Errorf("docker container %s: %w", nameOrID, err)
	}
	again, err := d.running(ctx, in.ID)
	if err == nil && again.State.Pid != in.State.Pid {
		err = fmt.Errorf("docker container %s: restarted while its namespace was opened: %w", nameOrID, ErrNotRunning)
	}
	if err != nil {
		c.Close()
		return Container{}, err
	}
	c.ID, c.Name = in.ID, strings.TrimPrefix(in.Name, "/")
	return c, nil
}

// running inspects a container that must be running.
func (d *Docker) running(ctx context.Context, nameOrID string) (inspect, error) {
	in, err := d.inspect(ctx, nameOrID)
	if err == nil && (!in.State.Running || in.State.Pid <= 0) {
		err = fmt.Errorf("docker container %s: %w", nameOrID, ErrNotRunning)
	}
	return in, err
}

// Lookup returns the full id of a container, running or not.
func (d *Docker) Lookup(ctx context.Context, nameOrID string) (string, error) {
	in, err := d.inspect(ctx, nameOrID)
	return in.ID, err
}

func (d *Docker) inspect(ctx context.Context, nameOrID string) (inspect, error) {
	var in inspect
	if nameOrID == "" || strings.ContainsAny(nameOrID, "/?#") {
		return in, fmt.Errorf("invalid docker container name %q", nameOrID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+url.PathEscape(nameOrID)+"/json", nil)
	if err != nil {
		return in, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return in, fmt.Errorf("%w at %s (is dockerd running?): %w", ErrDockerUnavailable, d.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return in, fmt.Errorf("docker inspect %s: %w", nameOrID, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return in, fmt.Errorf("docker container %s: %w", nameOrID, ErrNoSuchContainer)
	case resp.StatusCode != http.StatusOK:
		return in, fmt.Errorf("docker inspect %s: %s: %s", nameOrID, resp.Status, apiMessage(body))
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return in, fmt.Errorf("docker inspect %s: bad answer: %w", nameOrID, err)
	}
	if in.ID == "" || in.State == nil {
		return in, fmt.Errorf("docker inspect %s: answer without Id or State", nameOrID)
	}
	return in, nil
}

// apiMessage extracts {"message": ...} from an Engine API error body.
func apiMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		return m.Message
	}
	const maxLen = 200
	if len(body) > maxLen {
		body = body[:maxLen]
	}
	return strings.TrimSpace(string(body))
}
