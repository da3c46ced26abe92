package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	sdNotify("READY=1")
	_ = ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := ln.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "-datapath-type", "kernel"}, 2, "datapath-type"},
		{[]string{"run", "-cluster-file", "/nonexistent/cluster.yaml", "-listen", "127.0.0.1:0"}, 1, "cluster file"},
		{[]string{"bogus"}, 2, "unknown command"},
		{nil, 2, "usage"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := dispatch(context.Background(), c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := dispatch(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "ofctl-agent ") {
		t.Fatalf("%d %q", code, out.String())
	}
}
