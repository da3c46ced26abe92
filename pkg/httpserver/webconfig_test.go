package httpserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// writeFile writes content into a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basicAuthConfig(t *testing.T, dir, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "web.yml", fmt.Sprintf("basic_auth_users:\n  %s: %s\n", user, hash))
}

func getAuth(t *testing.T, client *http.Client, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBasicAuth(t *testing.T) {
	s := start(t, Config{WebConfigFile: basicAuthConfig(t, t.TempDir(), "prom", "s3cret")})
	tests := []struct {
		path, user, password string
		code                 int
	}{
		{"/metrics", "", "", 401},
		{"/metrics", "prom", "wrong", 401},
		{"/metrics", "other", "s3cret", 401},
		{"/metrics", "prom", "s3cret", 200},
		{"/debug/pprof/", "", "", 401},
		{"/nope", "prom", "s3cret", 404},
	}
	for _, tt := range tests {
		code, body := getAuth(t, http.DefaultClient, "http://"+s.Addr()+tt.path, tt.user, tt.password)
		if code != tt.code {
			t.Errorf("GET %s as %q/%q = %d %q, want %d", tt.path, tt.user, tt.password, code, body, tt.code)
		}
		if code == 200 && !strings.Contains(body, "test_things_total") {
			t.Errorf("authenticated /metrics lacks the metrics: %q", body)
		}
	}
}

// With basic auth on the main listener, probes that cannot send
// credentials use the health listener: /healthz and /readyz there answer
// without credentials, and nothing else is served there.
func TestHealthListenerWithoutAuth(t *testing.T) {
	ready := errors.New("pipeline not in OVS")
	s := start(t, Config{WebConfigFile: basicAuthConfig(t, t.TempDir(), "prom", "s3cret"), HealthAddr: "127.0.0.1:0",
		Ready: func() error { return ready }})
	if s.HealthAddr() == "" || s.HealthAddr() == s.Addr() {
		t.Fatalf("health listener at %q, main at %q", s.HealthAddr(), s.Addr())
	}
	tests := []struct {
		addr, path, user string
		code             int
		body             string
	}{
		{s.HealthAddr(), "/healthz", "", 200, "ok"},
		{s.HealthAddr(), "/readyz", "", 503, "not ready: pipeline not in OVS"},
		{s.HealthAddr(), "/metrics", "", 404, ""},
		{s.HealthAddr(), "/debug/pprof/", "", 404, ""},
		{s.Addr(), "/healthz", "", 401, ""},
		{s.Addr(), "/readyz", "", 401, ""},
		{s.Addr(), "/readyz", "prom", 503, "not ready"},
	}
	for _, tt := range tests {
		code, body := getAuth(t, http.DefaultClient, "http://"+tt.addr+tt.path, tt.user, "s3cret")
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s%s as %q = %d %q; want %d %q", tt.addr, tt.path, tt.user, code, body, tt.code, tt.body)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.HealthAddr() + "/healthz"); err == nil {
		t.Error("the health listener still answers after Close")
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testbed.SelfSigned(t)
	cert, key := writeFile(t, dir, "tls.crt", certPEM), writeFile(t, dir, "tls.key", keyPEM)
	cfg := writeFile(t, dir, "web.yml", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", cert, key))
	s := start(t, Config{WebConfigFile: cfg})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body := getAuth(t, client, "https://"+s.Addr()+"/metrics", "", ""); code != 200 || !strings.Contains(body, "test_things_total") {
		t.Errorf("https /metrics = %d %q", code, body)
	}
	if code, _ := getAuth(t, http.DefaultClient, "http://"+s.Addr()+"/metrics", "", ""); code != 400 {
		t.Errorf("plain http to the TLS server = %d, want 400", code)
	}
}

func TestBadWebConfig(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"unknown key":    "basic_auth_user:\n  a: b\n",
		"missing cert":   "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
		"not yaml":       "{{{",
		"plaintext pass": "basic_auth_users:\n  a: notabcrypthash\n",
	}
	for name, content := range tests {
		p := writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".yml", content)
		if _, err := New(Config{Addr: "127.0.0.1:0", Metrics: http.NotFoundHandler(), WebConfigFile: p}); err == nil {
			t.Errorf("%s: New accepted %q", name, content)
		}
	}
	absent := filepath.Join(dir, "absent.yml")
	_, err := New(Config{Addr: "127.0.0.1:0", Metrics: http.NotFoundHandler(), WebConfigFile: absent})
	if err == nil || strings.Count(err.Error(), absent) != 1 {
		t.Errorf("a web config file that does not exist: %v; want an error naming it once", err)
	}
}
