package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// With a web config requiring basic auth (--web-config-file), the agent's
// endpoints answer 401 without the right credentials and 200 with them.
func TestMetricsBasicAuth(t *testing.T) {
	testbed.Require(t)
	dir := t.TempDir()
	cluster, web := filepath.Join(dir, "cluster.yaml"), filepath.Join(dir, "web.yml")
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-me"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{cluster: agCluster, web: fmt.Sprintf("basic_auth_users:\n  prom: %s\n", hash)} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := mxStartAuth(t, testbed.NewNode(t, "ha"), cluster, web, "prom", "scrape-me")
	tests := []struct {
		path, user, password string
		code                 int
	}{
		{"/metrics", "", "", http.StatusUnauthorized},
		{"/metrics", "prom", "wrong", http.StatusUnauthorized},
		{"/readyz", "", "", http.StatusUnauthorized},
		{"/debug/pprof/", "", "", http.StatusUnauthorized},
		{"/metrics", "prom", "scrape-me", http.StatusOK},
		{"/readyz", "prom", "scrape-me", http.StatusOK},
	}
	for _, tt := range tests {
		if code, body := mxRequest(t, p.listen, tt.path, tt.user, tt.password); code != tt.code {
			t.Errorf("GET %s as %q = %d (%.200s), want %d", tt.path, tt.user, code, body, tt.code)
		}
	}
	if s := mxScrape(t, p, "prom", "scrape-me"); s[mxNS+"ready"] != 1 || s[mxNS+`scrape_collector_success{collector="ports"}`] != 1 {
		t.Errorf("authenticated scrape: ready %v, ports collector success %v", s[mxNS+"ready"], s[mxNS+`scrape_collector_success{collector="ports"}`])
	}
}

// mxStartAuth starts an agent (self "ha") with a web config file and waits
// until /readyz, with credentials, says ready.
func mxStartAuth(t *testing.T, node *testbed.Node, cluster, web, user, password string) *agProc {
	t.Helper()
	p := &agProc{node: node, listen: freePort(t)}
	p.args = []string{"run", "--node-name", "ha", "--ovsdb", node.DBAddr(), "--ovs-rundir", node.Dir,
		"--datapath-type", "netdev", "--tunnel-ip", "192.0.2.1", "--tunnel-port", "gre0", "--tunnel-ofport", "100",
		"--cluster-file", cluster, "--listen", p.listen, "--web-config-file", web}
	log, err := os.Create(filepath.Join(node.Dir, "agent-auth.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = log
	p.cmd = exec.Command(agBinary(t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("agent log:\n%s", tail(b, 4000))
		}
	})
	testbed.Eventually(t, 15*time.Second, func() bool {
		req, _ := http.NewRequest("GET", "http://"+p.listen+"/readyz", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "agent with basic auth never became ready")
	return p
}
