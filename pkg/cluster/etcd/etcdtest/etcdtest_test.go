package etcdtest

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestStartTakesOtherPortsWhenTaken: a port freeURL found free can be
// taken before etcd binds it (by another process's connection); a first
// start then serves on other ports, and a restart keeps them.
func TestStartTakesOtherPortsWhenTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := &Server{t: t, dir: filepath.Join(t.TempDir(), "etcd"), peerURL: freeURL(t)}
	s.clientURL = freeURL(t)
	s.clientURL.Host = taken.Addr().String()
	s.Start()
	t.Cleanup(s.Stop)
	if s.clientURL.Host == taken.Addr().String() {
		t.Fatalf("etcd claims to serve on %s, which another listener holds", s.clientURL.Host)
	}
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := s.Client(t).Get(ctx, "k")
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("get from %s: %v", s.Endpoint(), err)
	}
	endpoint := s.Endpoint()
	s.Stop()
	s.Start()
	if s.Endpoint() != endpoint {
		t.Errorf("restarted on %s, want %s", s.Endpoint(), endpoint)
	}
	if err := get(); err != nil {
		t.Fatalf("get after the restart: %v", err)
	}
}
