package main

import (
	"bytes"
	"context"
	"net"
	"os"
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

// Usage and start-up errors say what is wrong, each part of the message
// once ("cluster file: cluster file: open ..." said it twice).
func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("networks: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	cases := []struct {
		args       []string
		code       int
		want, once string
	}{
		{[]string{"run", "-datapath-type", "kernel"}, 2, "datapath-type", "datapath-type"},
		{[]string{"run", "-cluster-file", missing, "-listen", "127.0.0.1:0"}, 1, "cluster file: open " + missing, "cluster file"},
		{[]string{"run", "-cluster-file", bad, "-listen", "127.0.0.1:0"}, 1, "cluster file " + bad + ":", "cluster file"},
		{[]string{"run", "-config", missing}, 2, "config file: open " + missing, "config file"},
		{[]string{"bogus"}, 2, "unknown command", "unknown command"},
		{nil, 2, "usage", "usage"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) || strings.Count(errb.String(), c.once) != 1 {
			t.Errorf("%v: code %d, stderr %q; want %d, %q and %q once", c.args, code, errb.String(), c.code, c.want, c.once)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := dispatch(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "ofctl-agent ") {
		t.Fatalf("%d %q", code, out.String())
	}
}
