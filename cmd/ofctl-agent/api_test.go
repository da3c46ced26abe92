package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// TestServeAPI: the agent's socket is root's alone; before the agent has
// loaded its ports and view an allocation is "not ready"; a malformed
// request is logged once and counted as an invalid input (agent-api); every
// request is counted by call and result.
func TestServeAPI(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cf, []byte(testCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: cf})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ag, err := agent.New(agent.Config{NodeName: "node-a", OVSDB: "unix:" + filepath.Join(dir, "db.sock"),
		OpenFlow: "unix:" + filepath.Join(dir, "br-int.mgmt"), TunnelPort: "gre0", Cluster: src, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "agent.sock")
	closeAPI, err := serveAPI(sock, ag, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAPI()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, mode %v", err, fi.Mode())
	}
	c := agentapi.NewClient(sock)
	ctx := context.Background()
	if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: "x"}); !errors.Is(err, agentapi.ErrNotReady) {
		t.Fatalf("allocate before the agent runs: %v, want ErrNotReady", err)
	}
	if s, err := c.Status(ctx); err != nil || s.Ready || s.Reason == "" {
		t.Fatalf("status: %+v, %v", s, err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://agent/v1/addresses", "application/json", strings.NewReader(`{"network":"blue","owner":"x","bogus":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed request: %s", resp.Status)
	}
	st := ag.Status()
	if st.Rejects["agent-api"] != 1 {
		t.Errorf("invalid inputs (agent-api): %d, want 1", st.Rejects["agent-api"])
	}
	want := map[agent.APIRequest]uint64{{Call: "allocate", Result: "not-ready"}: 1, {Call: "status", Result: "ok"}: 1,
		{Call: "allocate", Result: "invalid"}: 1}
	for k, n := range want {
		if st.APIRequests[k] != n {
			t.Errorf("requests %v: %d, want %d (all: %v)", k, st.APIRequests[k], n, st.APIRequests)
		}
	}
	if n := strings.Count(logs.String(), "bogus"); n != 1 {
		t.Errorf("the malformed request was logged %d times, want once:\n%s", n, logs.String())
	}
	if _, err := serveAPI(sock, ag, log); err == nil {
		t.Error("a second agent took over a served socket")
	}
}
