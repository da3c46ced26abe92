// Package etcdtest runs a real single-member etcd inside a test process
// (go.etcd.io/etcd/server/v3/embed), listening on 127.0.0.1, with its data
// in a test's temporary directory. It can be stopped and started again on
// the same ports and data, to test what clients do while etcd is away.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Server is one embedded etcd member.
type Server struct {
	t         testing.TB
	dir       string
	clientURL url.URL
	peerURL   url.URL
	etcd      *embed.Etcd
	pki       *pki               // StartTLS
	tls       *transport.TLSInfo // StartTLS: the client listener's
	started   bool               // Start succeeded once: the ports are the member's
}

// Start runs a new member and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: filepath.Join(t.TempDir(), "etcd"),
		clientURL: freeURL(t), peerURL: freeURL(t)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func freeURL(t testing.TB) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// Endpoint is the client URL, e.g. "http://127.0.0.1:34567".
func (s *Server) Endpoint() string { return s.clientURL.String() }

// Dir is the data directory (kept across Stop and Start).
func (s *Server) Dir() string { return s.dir }

// Start starts the member (again) on the same ports and data directory and
// waits until it serves.
func (s *Server) Start() {
	s.t.Helper()
	if s.etcd != nil {
		s.t.Fatal("etcdtest: already running")
	}
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	s.setURLs(cfg)
	if s.tls != nil {
		cfg.ClientTLSInfo = *s.tls
	}
	cfg.BcryptCost = 4 // bcrypt's minimum: password checks cost ~1 ms, not ~100 (more under -race)
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	var e *embed.Etcd
	var err error
	// The ports were free a moment ago, and may linger after a Stop.
	for range 50 {
		if e, err = embed.StartEtcd(cfg); err == nil {
			break
		}
		if !s.started && strings.Contains(err.Error(), "address already in use") {
			// Taken since freeURL saw them free (by another process's
			// connection, say): a first start may take others.
			scheme := s.clientURL.Scheme // https with StartTLS
			s.clientURL, s.peerURL = freeURL(s.t), freeURL(s.t)
			s.clientURL.Scheme = scheme
			s.setURLs(cfg)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("etcdtest: start: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		s.t.Fatal("etcdtest: etcd not ready after 30s")
	}
	s.etcd, s.started = e, true
}

// setURLs sets the member's URLs in cfg.
func (s *Server) setURLs(cfg *embed.Config) {
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, s.peerURL.String())
}

// Stop stops the member; its data stays for Start. Safe to call twice.
func (s *Server) Stop() {
	if s.etcd == nil {
		return
	}
	s.etcd.Close()
	s.etcd = nil
}

// Running reports whether the member is started.
func (s *Server) Running() bool { return s.etcd != nil }

// Client returns a client of the member, closed in t.Cleanup.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return s.ClientAs(t, "", "")
}

// ClientAs returns a client of the member authenticated as user (auth
// on), closed in t.Cleanup.
func (s *Server) ClientAs(t testing.TB, user, password string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second,
		Username: user, Password: password,
		Logger: zap.NewNop(), DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second}})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Compact compacts the member's history up to its current revision.
func (s *Server) Compact(t testing.TB, c *clientv3.Client) int64 {
	t.Helper()
	rev := Revision(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return rev
}

// Revision returns the current revision of the store c talks to.
func Revision(t testing.TB, c *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// EnableAuth creates etcd's root user with password and turns auth on, as
// an operator does once (docs/etcd.md, "Trust and roles"). c must be a
// client of s without credentials; the returned client is root's. With
// password "" (StartTLS), root has none and logs in with a certificate
// whose CN is root.
func (s *Server) EnableAuth(t testing.TB, c *clientv3.Client, password string) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { return addUser(ctx, c, "root", password) },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcdtest: enable auth: %v", err)
		}
	}
	if password == "" {
		return s.ClientWithCert(t, "root")
	}
	return s.ClientAs(t, "root", password)
}

// addUser adds a user with a password, or without one ("": it logs in
// with a client certificate whose CN is its name).
func addUser(ctx context.Context, c *clientv3.Client, name, password string) error {
	_, err := c.UserAddWithOptions(ctx, name, password, &clientv3.UserAddOptions{NoPassword: password == ""})
	return err
}

// AddHost gives host node the user ofctl-<node> with password (none: it
// logs in with a client certificate whose CN is ofctl-<node>) and the role
// of docs/etcd.md: read on prefix/, readwrite on prefix/hosts/<node>/ and
// on prefix/claims/<network>/<node>/ for each of networks (the networks
// the host may have endpoints in). root is root's client.
func AddHost(t testing.TB, root *clientv3.Client, prefix, node, password string, networks ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := "ofctl-" + node
	all, own := prefix+"/", prefix+"/hosts/"+node+"/"
	steps := []func() error{
		func() error { _, err := root.RoleAdd(ctx, name); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, name, all, clientv3.GetPrefixRangeEnd(all), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error {
			_, err := root.RoleGrantPermission(ctx, name, own, clientv3.GetPrefixRangeEnd(own), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
	}
	for _, n := range networks {
		claims := prefix + "/claims/" + n + "/" + node + "/"
		steps = append(steps, func() error {
			_, err := root.RoleGrantPermission(ctx, name, claims, clientv3.GetPrefixRangeEnd(claims), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		})
	}
	steps = append(steps,
		func() error { return addUser(ctx, root, name, password) },
		func() error { _, err := root.UserGrantRole(ctx, name, name); return err },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcdtest: host user %s: %v", name, err)
		}
	}
}
