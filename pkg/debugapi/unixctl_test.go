package debugapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeDaemon serves one unixctl connection per reply in replies: it
// decodes the request, hands it to check, and writes the reply verbatim.
func fakeDaemon(t *testing.T, check func(unixctlRequest), replies ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.ctl")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for _, rep := range replies {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req unixctlRequest
			if err := json.NewDecoder(c).Decode(&req); err == nil && check != nil {
				check(req)
			}
			if rep != "<hang>" {
				_, _ = c.Write([]byte(rep))
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return path
}

func fixedPath(p string) func() (string, error) { return func() (string, error) { return p, nil } }

func TestUnixctlCall(t *testing.T) {
	got := make(chan unixctlRequest, 1)
	path := fakeDaemon(t, func(r unixctlRequest) { got <- r }, `{"id":0,"result":"Flow: ip\n","error":null}`)
	out, err := Unixctl{Path: fixedPath(path)}.Call(context.Background(), "ofproto/trace", "br-int", "ip,in_port=1")
	if err != nil || out != "Flow: ip\n" {
		t.Fatalf("%q, %v", out, err)
	}
	req := <-got
	if req.Method != "ofproto/trace" || !slices.Equal(req.Params, []string{"br-int", "ip,in_port=1"}) || req.ID != 0 {
		t.Errorf("request %+v", req)
	}
}

func TestUnixctlErrors(t *testing.T) {
	tests := []struct {
		name, reply, want string
		typed             bool
	}{
		{"daemon error", `{"id":0,"result":null,"error":"Bad openflow flow syntax: x\n"}`, "Bad openflow flow syntax: x", true},
		{"error object", `{"id":0,"result":null,"error":{"code":1}}`, `{"code":1}`, true},
		{"wrong id", `{"id":7,"result":"x","error":null}`, "reply id 7", false},
		{"not json", `hello`, "bad reply", false},
		{"result not a string", `{"id":0,"result":5,"error":null}`, "not a string", false},
		{"closed early", ``, "bad reply", false},
	}
	for _, tt := range tests {
		path := fakeDaemon(t, nil, tt.reply)
		_, err := Unixctl{Path: fixedPath(path)}.Call(context.Background(), "m")
		var ue *UnixctlError
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.As(err, &ue) != tt.typed {
			t.Errorf("%s: %v (typed %v), want %q typed %v", tt.name, err, errors.As(err, &ue), tt.want, tt.typed)
		}
	}
}

func TestUnixctlTimeoutAndNoSocket(t *testing.T) {
	path := fakeDaemon(t, nil, "<hang>")
	start := time.Now()
	_, err := Unixctl{Path: fixedPath(path), Timeout: 200 * time.Millisecond}.Call(context.Background(), "m")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("hanging daemon: %v after %v", err, time.Since(start))
	}
	if _, err := (Unixctl{Path: fixedPath(filepath.Join(t.TempDir(), "none"))}).Call(context.Background(), "m"); err == nil {
		t.Error("missing socket: no error")
	}
	if _, err := (Unixctl{}).Call(context.Background(), "m"); err == nil {
		t.Error("no path: no error")
	}
}

func TestVswitchdCtl(t *testing.T) {
	dir := t.TempDir()
	if _, err := VswitchdCtl(dir); err == nil || !strings.Contains(err.Error(), "--vswitchd-ctl") {
		t.Errorf("no pidfile: %v", err)
	}
	pidfile := filepath.Join(dir, "ovs-vswitchd.pid")
	for content, want := range map[string]string{"1234\n": filepath.Join(dir, "ovs-vswitchd.1234.ctl"), "x\n": "", "-3": ""} {
		if err := os.WriteFile(pidfile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := VswitchdCtl(dir)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("pidfile %q: %q, %v; want %q", content, got, err, want)
		}
	}
}
