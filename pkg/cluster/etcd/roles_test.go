package etcd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// authBed is an etcd with auth on, set up by the commands of docs/etcd.md
// ("Trust and roles") run as written with the real etcdctl.
type authBed struct {
	srv       *etcdtest.Server
	root      *clientv3.Client
	passwords map[string]string // node -> its user's password
}

// docShellBlocks returns the sh blocks of one section of docs/etcd.md.
func docShellBlocks(t *testing.T, section string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "etcd.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\n## "+section+"\n")
	if !ok {
		t.Fatalf("docs/etcd.md has no section %q", section)
	}
	body, _, _ = strings.Cut(body, "\n## ")
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(body, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) != 2 {
		t.Fatalf("section %q: %d sh blocks, want 2 (cluster set-up, then per host)", section, len(blocks))
	}
	return blocks
}

func startAuthBed(t *testing.T) *authBed {
	t.Helper()
	testbed.RequireTools(t, "etcdctl", "bash")
	b := &authBed{srv: etcdtest.Start(t), passwords: map[string]string{"host-a": "pw-of-a", "host-b": "pw-of-b"}}
	dir := t.TempDir()
	for node, pw := range b.passwords {
		if err := os.WriteFile(filepath.Join(dir, node+".etcd-password"), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const rootPassword = "root-secret"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(docShellBlocks(t, "Trust and roles"), "\n"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3", "ETCDCTL_ENDPOINTS="+b.srv.Endpoint(), "ROOT_PASSWORD="+rootPassword,
		"ETCDCTL_COMMAND_TIMEOUT=30s") // a loaded machine, -race
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the commands of docs/etcd.md failed after %v: %v\n%s", time.Since(start), err, out)
	}
	b.root = b.client(t, "root", rootPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.srv.Client(t).Get(ctx, DefaultPrefix+"/"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Fatalf("etcd answers a client without credentials (err %v): auth is not on", err)
	}
	return b
}

// client connects as an etcd user, with the agent's own client code.
func (b *authBed) client(t *testing.T, user, password string) *clientv3.Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Endpoints: []string{b.srv.Endpoint()}, Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (b *authBed) hostClient(t *testing.T, node string) *clientv3.Client {
	return b.client(t, "ofctl-"+node, b.passwords[node])
}

// agent runs one host's publisher and source with its own credentials.
type agentPair struct {
	pub *Publisher
	src *Source
}

func (b *authBed) agent(t *testing.T, node, tunnelIP string, ep endpoint.Endpoint, hook func(*Publisher)) agentPair {
	t.Helper()
	return runAgent(t, b.hostClient(t, node), node, tunnelIP, ep, hook)
}

func runAgent(t *testing.T, c *clientv3.Client, node, tunnelIP string, ep endpoint.Endpoint, hook func(*Publisher)) agentPair {
	t.Helper()
	pub, err := NewPublisher(PublisherConfig{Client: c, Host: node, TunnelIP: netip.MustParseAddr(tunnelIP), TTL: 5 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(pub)
	}
	src, err := New(Config{Client: c, Logger: testLogger(), OnHostLayoutReaders: pub.SetHostLayoutReaders})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = pub.Run(ctx) }()
	go func() { defer wg.Done(); _ = src.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	pub.PublishEndpoints([]endpoint.Endpoint{ep})
	return agentPair{pub, src}
}

func sees(src *Source, host, ip string) bool {
	v, ok := src.Current()
	if !ok {
		return false
	}
	for _, e := range v.EndpointList() {
		if e.Host == host && e.IP.String() == ip {
			return true
		}
	}
	return false
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s: err %v, want permission denied", what, err)
	}
}

func blueEP(last byte) endpoint.Endpoint {
	return endpoint.Endpoint{Network: "blue", IP: netip.AddrFrom4([4]byte{10, 100, 0, last}), MAC: net.HardwareAddr{2, 0, 0, 0, 0, last}}
}

// TestRolesConfineHosts: with the roles of docs/etcd.md, host A's
// credentials cannot write, delete or lease anything in host B's name nor
// the networks, and both hosts' agents publish and see each other.
func TestRolesConfineHosts(t *testing.T) {
	b := startAuthBed(t)
	a := b.agent(t, "host-a", "192.0.2.1", blueEP(1), nil)
	bb := b.agent(t, "host-b", "192.0.2.2", blueEP(2), nil)
	eventually(t, 10*time.Second, func() bool {
		return sees(a.src, "host-b", "10.100.0.2") && sees(bb.src, "host-a", "10.100.0.1") && sees(a.src, "host-a", "10.100.0.1") &&
			sees(bb.src, "host-b", "10.100.0.2") // each its own too: the views are compared below
	}, "agents with per-host roles do not see each other: %+v %+v", a.pub.State(), bb.pub.State())

	ca := b.hostClient(t, "host-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{
		HostKey(DefaultPrefix, "host-b"),
		EndpointKey(DefaultPrefix, "blue", netip.MustParseAddr("10.100.0.9"), "host-b"),
		EndpointKey(DefaultPrefix, "red", netip.MustParseAddr("10.200.0.9"), "host-a"),      // a network not granted to it
		HostEndpointKey(DefaultPrefix, "blue", netip.MustParseAddr("10.100.0.9"), "host-b"), // the host layout, in host-b's name
		HostKey(DefaultPrefix, "host-bb"),                                                   // a name that host-b's prefix starts
		HostKey(DefaultPrefix, "host-ab"),                                                   // and host-a's
		NetworkKey(DefaultPrefix, "red"),                                                    // networks are the operators'
		DefaultPrefix + "/hosts/host-a",                                                     // the old layout, even in its own name
		DefaultPrefix + "/endpoints/blue/x",                                                 // idem
	} {
		_, err := ca.Put(ctx, key, string(EncodeHost(netip.MustParseAddr("198.51.100.1"))))
		wantDenied(t, "host-a puts "+key, err)
	}
	_, err := ca.Delete(ctx, HostKey(DefaultPrefix, "host-b"))
	wantDenied(t, "host-a deletes host-b's record", err)
	_, err = ca.Delete(ctx, DefaultPrefix+"/hosts/", clientv3.WithPrefix())
	wantDenied(t, "host-a deletes every host", err)
	bLease := bb.pub.State().Lease
	_, err = ca.Revoke(ctx, bLease)
	wantDenied(t, "host-a revokes host-b's lease", err)
	_, err = ca.KeepAliveOnce(ctx, bLease)
	wantDenied(t, "host-a renews host-b's lease", err)
	_, err = ca.Put(ctx, EndpointKey(DefaultPrefix, "blue", netip.MustParseAddr("10.100.0.9"), "host-a"),
		string(EncodeEndpoint(blueEP(9).MAC)), clientv3.WithLease(bLease))
	wantDenied(t, "host-a attaches a key to host-b's lease", err)
	// Its own prefix is writable (the agent does it): shown by the
	// publisher's state.
	for _, p := range []agentPair{a, bb} {
		if s := p.pub.State(); s.Pending || s.ForeignWrites != 0 || s.Grants != 1 {
			t.Errorf("publisher state %+v", s)
		}
	}
	// The view both agents share is the same.
	va, _ := a.src.Current()
	vb, _ := bb.src.Current()
	if !va.Equal(vb) || cluster.Validate(va) != nil {
		t.Errorf("views differ:\n%+v\n%+v", va, vb)
	}
}

// TestPublisherReplacesTamperedLease: between host A's lease grant and its
// first write, host B attaches one of its own keys to that lease (etcd
// allows it while the lease holds no key); etcd then refuses A's writes
// under it. A must notice, report it and publish under a new lease.
func TestPublisherReplacesTamperedLease(t *testing.T) {
	b := startAuthBed(t)
	cb := b.hostClient(t, "host-b")
	var tampered clientv3.LeaseID
	a := b.agent(t, "host-a", "192.0.2.1", blueEP(1), func(p *Publisher) {
		p.afterGrant = func(id clientv3.LeaseID) {
			if tampered != 0 {
				return
			}
			tampered = id
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := cb.Put(ctx, HostKey(DefaultPrefix, "host-b"), string(EncodeHost(netip.MustParseAddr("192.0.2.2"))),
				clientv3.WithLease(id)); err != nil {
				t.Errorf("host-b could not attach its key to host-a's fresh lease: %v", err)
			}
		}
	})
	// Well before the tampered lease ends by itself (TTL 5 s, nobody can
	// renew it for host-a), which would also let host-a publish.
	eventually(t, 3*time.Second, func() bool { s := a.pub.State(); return !s.Pending && s.Grants == 2 },
		"host-a did not publish under a new lease within 3 s: %+v", a.pub.State())
	_, lease := getKV(t, b.root, HostKey(DefaultPrefix, "host-a"))
	if s := a.pub.State(); lease == 0 || lease == int64(tampered) || s.ForeignWrites == 0 {
		t.Errorf("record lease %x (tampered %x), state %+v", lease, tampered, s)
	}
}

// TestRolesWithClientCertificates: with etcd's --client-cert-auth and a
// certificate per host whose CN is its etcd user (no password), the same
// roles confine each host, through the agent's --etcd-cert/--etcd-key.
func TestRolesWithClientCertificates(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	root := srv.EnableAuth(t, srv.ClientWithCert(t, "setup"), "")
	put(t, root, NetworkKey(DefaultPrefix, "blue"), string(EncodeNetwork(cluster.Network{Name: "blue", VNI: 100,
		Subnet: netip.MustParsePrefix("10.100.0.0/16")})))
	hostClient := func(node string) *clientv3.Client {
		cf := srv.ClientCert(t, "ofctl-"+node)
		c, err := NewClient(ClientConfig{Endpoints: []string{srv.Endpoint()}, CertFile: cf.Cert, KeyFile: cf.Key, CAFile: srv.CAFile()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	for _, node := range []string{"host-a", "host-b"} {
		etcdtest.AddHost(t, root, DefaultPrefix, node, "", "blue")
	}
	a := runAgent(t, hostClient("host-a"), "host-a", "192.0.2.1", blueEP(1), nil)
	b := runAgent(t, hostClient("host-b"), "host-b", "192.0.2.2", blueEP(2), nil)
	eventually(t, 10*time.Second, func() bool { return sees(a.src, "host-b", "10.100.0.2") && sees(b.src, "host-a", "10.100.0.1") },
		"agents with certificate users do not see each other: %+v %+v", a.pub.State(), b.pub.State())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := hostClient("host-a").Put(ctx, HostKey(DefaultPrefix, "host-b"), string(EncodeHost(netip.MustParseAddr("198.51.100.1"))))
	wantDenied(t, "host-a's certificate puts host-b's record", err)
	_, err = srv.ClientWithCert(t, "nobody").Get(ctx, DefaultPrefix+"/", clientv3.WithPrefix())
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("a certificate of no etcd user reads the prefix: err %v, want permission denied", err)
	}
}

// TestRolesNetworkNotGranted: a host with an endpoint in a network its
// role has no grant for cannot publish that claim (etcd refuses it, the
// publisher keeps retrying and says so), while its claims in the networks
// it may join and its host record are written and seen by the others.
func TestRolesNetworkNotGranted(t *testing.T) {
	b := startAuthBed(t)
	a := b.agent(t, "host-a", "192.0.2.1", blueEP(1), nil)
	bb := b.agent(t, "host-b", "192.0.2.2", blueEP(2), nil)
	red := endpoint.Endpoint{Network: "red", IP: netip.MustParseAddr("10.200.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 2, 1}}
	a.pub.PublishEndpoints([]endpoint.Endpoint{blueEP(1), red, blueEP(3)})
	eventually(t, 10*time.Second, func() bool {
		s := a.pub.State()
		return sees(bb.src, "host-a", "10.100.0.1") && sees(bb.src, "host-a", "10.100.0.3") && s.Pending && s.Failures > 0
	}, "host-a's blue claims not published beside the refused red one: %+v", a.pub.State())
	if v, _ := getKV(t, b.root, EndpointKey(DefaultPrefix, "red", red.IP, "host-a")); v != "" {
		t.Errorf("host-a's claim in red, a network not granted to it, was written: %s", v)
	}
	if v, _ := getKV(t, b.root, HostKey(DefaultPrefix, "host-a")); v == "" {
		t.Error("host-a's host record is missing")
	}
	if s := a.pub.State(); s.ForeignWrites != 0 {
		t.Errorf("the refusal counted as foreign writes: %+v", s)
	}
}

// TestRolesRollingUpgrade: with the roles of docs/etcd.md, host-a runs the
// previous version (its records written as that version wrote them, with
// its own credentials) and host-b the upgraded agent: host-b's role lets
// it write its claims' copies in the host layout, which host-a reads, and
// host-b sees host-a's endpoint. A claim in a network not granted to
// host-b gets no copy either: the host layout does not bypass the grant.
func TestRolesRollingUpgrade(t *testing.T) {
	b := startAuthBed(t)
	ca := b.hostClient(t, "host-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := ca.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	put(t, ca, HostKey(DefaultPrefix, "host-a"), `{"version":1,"tunnel_ip":"192.0.2.1"}`, clientv3.WithLease(g.ID))
	put(t, ca, HostEndpointKey(DefaultPrefix, "blue", blueEP(1).IP, "host-a"), string(EncodeEndpoint(blueEP(1).MAC)), clientv3.WithLease(g.ID))
	bb := b.agent(t, "host-b", "192.0.2.2", blueEP(2), nil)
	red := endpoint.Endpoint{Network: "red", IP: netip.MustParseAddr("10.200.0.2"), MAC: net.HardwareAddr{2, 0, 0, 0, 2, 2}}
	bb.pub.PublishEndpoints([]endpoint.Endpoint{blueEP(2), red})
	copyB := HostEndpointKey(DefaultPrefix, "blue", blueEP(2).IP, "host-b")
	eventually(t, 10*time.Second, func() bool {
		v, lease := getKV(t, ca, copyB) // read as host-a reads it
		s := bb.pub.State()
		return v == string(EncodeEndpoint(blueEP(2).MAC)) && lease == int64(s.Lease) && s.Failures > 0 &&
			sees(bb.src, "host-a", "10.100.0.1")
	}, "host-b's copy in the host layout not readable by host-a, or host-a not seen: %+v", bb.pub.State())
	if v, _ := getKV(t, b.root, HostEndpointKey(DefaultPrefix, "red", red.IP, "host-b")); v != "" {
		t.Errorf("host-b's claim in red, a network not granted to it, was copied to the host layout: %s", v)
	}
	if s := bb.pub.State(); s.ForeignWrites != 0 || !s.Pending {
		t.Errorf("host-b's publisher: %+v (the refused red claim keeps it pending)", s)
	}
}
