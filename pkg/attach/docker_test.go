package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEngine serves the Engine API's container inspect on a unix socket.
func fakeEngine(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

func TestDockerResolve(t *testing.T) {
	var paths []string
	pid := os.Getpid() // the container's process: its namespace is opened
	sock := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.EscapedPath())
		switch r.URL.Path {
		case "/containers/web/json", "/containers/abc123/json", "/containers/abc123def/json":
			fmt.Fprintf(w, `{"Id":"abc123def","Name":"/web","State":{"Status":"running","Running":true,"Pid":%d},"Config":{"Image":"x"}}`, pid)
		case "/containers/restarting/json":
			fmt.Fprintf(w, `{"Id":"5e5e","State":{"Running":true,"Pid":%d}}`, pid)
		case "/containers/5e5e/json": // inspected again: another process now
			_, _ = w.Write([]byte(`{"Id":"5e5e","State":{"Running":true,"Pid":1}}`))
		case "/containers/stopped/json":
			_, _ = w.Write([]byte(`{"Id":"5709","Name":"/stopped","State":{"Running":false,"Pid":0}}`))
		case "/containers/garbage/json":
			_, _ = w.Write([]byte(`{"Id":`))
		case "/containers/nostate/json":
			_, _ = w.Write([]byte(`{"Id":"x"}`))
		case "/containers/boom/json":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"engine on fire"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: missing"}`))
		}
	})
	d := NewDocker(sock)
	ctx := context.Background()
	c, err := d.Resolve(ctx, "web")
	if err != nil || c.ID != "abc123def" || c.NetNS.Path() != fmt.Sprintf("/proc/%d/ns/net", pid) || !c.NetNS.is("/proc/self/ns/net") {
		t.Fatalf("Resolve(web) = %+v, %v", c, err)
	}
	c.Close()
	if id, err := d.Lookup(ctx, "stopped"); err != nil || id != "5709" {
		t.Fatalf("Lookup(stopped) = %q, %v; want the id of a stopped container", id, err)
	}
	cases := []struct {
		name    string
		want    error
		message string
	}{
		{"stopped", ErrNotRunning, "not running"},
		{"restarting", ErrNotRunning, "restarted while its namespace was opened"},
		{"missing", ErrNoSuchContainer, "no such container"},
		{"garbage", nil, "bad answer"},
		{"nostate", nil, "without Id or State"},
		{"boom", nil, "engine on fire"},
		{"a/b", nil, "invalid docker container name"},
		{"", nil, "invalid docker container name"},
	}
	for _, tc := range cases {
		_, err := d.Resolve(ctx, tc.name)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("Resolve(%q) = %v, want %v / %q", tc.name, err, tc.want, tc.message)
		}
	}
	if paths[0] != "/containers/web/json" {
		t.Errorf("request path %q", paths[0])
	}
}

func TestDockerNotRunning(t *testing.T) {
	d := NewDocker(filepath.Join(t.TempDir(), "no.sock"))
	_, err := d.Resolve(context.Background(), "web")
	if !errors.Is(err, ErrDockerUnavailable) || !strings.Contains(err.Error(), "is dockerd running?") {
		t.Fatalf("got %v, want ErrDockerUnavailable with a hint", err)
	}
}

func TestDockerSocketFromEnv(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
	if s := NewDocker("").Socket; s != "/run/user/1000/docker.sock" {
		t.Errorf("socket %q from DOCKER_HOST", s)
	}
	t.Setenv("DOCKER_HOST", "tcp://1.2.3.4:2375")
	if s := NewDocker("").Socket; s != DefaultDockerSocket {
		t.Errorf("socket %q for a tcp DOCKER_HOST, want the default", s)
	}
}

func TestTargets(t *testing.T) {
	if _, err := NetNSTarget(filepath.Join(t.TempDir(), "gone")); err == nil {
		t.Error("NetNSTarget of a missing path succeeded")
	}
	if _, err := NetNSTarget(t.TempDir()); err == nil {
		t.Error("NetNSTarget of a directory succeeded")
	}
	if _, err := PIDTarget(0); err == nil {
		t.Error("PIDTarget(0) succeeded")
	}
	if _, err := NetNSTarget("/proc/self/status"); err == nil {
		t.Error("NetNSTarget of a plain file succeeded")
	}
	pid := os.Getpid()
	c, err := PIDTarget(pid)
	if want := fmt.Sprintf("/proc/%d/ns/net", pid); err != nil || c.NetNS.Path() != want || c.ID != want {
		t.Errorf("PIDTarget(%d) = %+v, %v", pid, c, err)
	}
	c.Close()
}
