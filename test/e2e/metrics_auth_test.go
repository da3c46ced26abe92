package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	mxWrite(t, map[string]string{cluster: agCluster, web: "basic_auth_users:\n  prom: " + mxHash(t, "scrape-me") + "\n"})
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
		if code, body := mxRequest(t, p.Listen, tt.path, tt.user, tt.password); code != tt.code {
			t.Errorf("GET %s as %q = %d (%.200s), want %d", tt.path, tt.user, code, body, tt.code)
		}
	}
	if s := mxScrape(t, p, "prom", "scrape-me"); s[mxNS+"ready"] != 1 || s[mxNS+`scrape_collector_success{collector="ports"}`] != 1 {
		t.Errorf("authenticated scrape: ready %v, ports collector success %v", s[mxNS+"ready"], s[mxNS+`scrape_collector_success{collector="ports"}`])
	}
}

// With TLS and basic auth, probes use --health-listen without credentials,
// and dump-flows reaches the agent with the README's command: credentials
// in the --listen URL, the private CA in SSL_CERT_FILE (only the paths and
// the address change).
func TestAuthProbesAndDebugClient(t *testing.T) {
	testbed.Require(t)
	dir := t.TempDir()
	ca, cert, key := mxCertificates(t, dir)
	cluster, web := filepath.Join(dir, "cluster.yaml"), filepath.Join(dir, "web.yml")
	mxWrite(t, map[string]string{cluster: agCluster, web: fmt.Sprintf(
		"tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prom: %s\n", cert, key, mxHash(t, "secret"))})
	node := testbed.NewNode(t, "ha")
	health := testbed.FreePort(t)
	p := testbed.StartAgent(t, filepath.Join(node.Dir, "agent-auth.log"), append(testbed.AgentArgs(node, "ha", "192.0.2.1"),
		"--cluster-file", cluster, "--web-config-file", web, "--health-listen", health)...)
	p.Scheme, p.User, p.Password, p.Client = "https", "prom", "secret", mxTLSClient(t, ca)
	p.WaitReady(t, 15*time.Second)

	probe := &testbed.Agent{Listen: health} // plain HTTP, no credentials
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 404} {
		if code, body, err := probe.Get(path); err != nil || code != want {
			t.Errorf("health listener %s: %d %v %.200s, want %d", path, code, err, body, want)
		}
	}
	anonymous := &testbed.Agent{Listen: p.Listen, Scheme: "https", Client: p.Client}
	if code, _, err := anonymous.Get("/readyz"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/readyz on --listen without credentials: %d %v, want 401", code, err)
	}

	cmd := rmReadmeCommand(t, "SSL_CERT_FILE=")
	cmd = strings.NewReplacer("/etc/ofctl-agent/ca.pem", ca, "127.0.0.1:9750", p.Listen).Replace(cmd)
	out, err := rmShellEnv(cmd, "PATH="+filepath.Dir(testbed.AgentBinary(t))+":"+os.Getenv("PATH"))
	if err != nil || !strings.Contains(string(out), "Flows of br-int") {
		t.Errorf("%s: %v\n%s", cmd, err, out)
	}
	noAuth := strings.Replace(cmd, "prom:secret@", "", 1)
	out, err = rmShellEnv(noAuth, "PATH="+filepath.Dir(testbed.AgentBinary(t))+":"+os.Getenv("PATH"))
	if err == nil || !strings.Contains(string(out), "401 Unauthorized") || !strings.Contains(string(out), "--listen https://USER:PASSWORD@") {
		t.Errorf("%s: %v, want a 401 naming --listen with credentials\n%s", noAuth, err, out)
	}
}

// mxStartAuth starts an agent (self "ha") with a web config file and waits
// until /readyz, with credentials, says ready.
func mxStartAuth(t *testing.T, node *testbed.Node, cluster, web, user, password string) *testbed.Agent {
	t.Helper()
	p := testbed.StartAgent(t, filepath.Join(node.Dir, "agent-auth.log"), append(testbed.AgentArgs(node, "ha", "192.0.2.1"),
		"--cluster-file", cluster, "--web-config-file", web)...)
	p.User, p.Password = user, password
	p.WaitReady(t, 15*time.Second)
	return p
}

func mxWrite(t *testing.T, files map[string]string) {
	t.Helper()
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func mxHash(t *testing.T, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(hash)
}

// mxTLSClient trusts the CA in file ca.
func mxTLSClient(t *testing.T, ca string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("bad CA file")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// mxCertificates writes a self-signed certificate for 127.0.0.1 (its own
// CA) and its key into dir and returns the CA, certificate and key files.
func mxCertificates(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	certPEM, keyPEM := testbed.SelfSigned(t)
	cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	mxWrite(t, map[string]string{cert: certPEM, key: keyPEM})
	return cert, cert, key
}
