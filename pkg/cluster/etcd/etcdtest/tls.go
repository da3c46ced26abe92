package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// StartTLS runs a new member that serves clients over TLS and requires a
// client certificate signed by its CA (etcd's --client-cert-auth): with
// auth on, the certificate's CN is the etcd user.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: filepath.Join(t.TempDir(), "etcd"), clientURL: freeURL(t), peerURL: freeURL(t)}
	s.clientURL.Scheme = "https"
	s.pki = newPKI(t)
	server := s.pki.issue(t, "etcdtest-server", true)
	s.tls = &transport.TLSInfo{CertFile: server.Cert, KeyFile: server.Key, TrustedCAFile: s.pki.caFile, ClientCertAuth: true}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// CertFiles are PEM files of a certificate and its key.
type CertFiles struct{ Cert, Key string }

// ClientCert issues a client certificate whose CN is user, signed by the
// member's CA (StartTLS only).
func (s *Server) ClientCert(t testing.TB, user string) CertFiles {
	t.Helper()
	if s.pki == nil {
		t.Fatal("etcdtest: ClientCert needs StartTLS")
	}
	return s.pki.issue(t, user, false)
}

// CAFile is the CA certificate of the member's server certificate
// (StartTLS only).
func (s *Server) CAFile() string { return s.pki.caFile }

// ClientWithCert returns a client of a TLS member authenticated by a
// client certificate whose CN is user, closed in t.Cleanup.
func (s *Server) ClientWithCert(t testing.TB, user string) *clientv3.Client {
	t.Helper()
	cf := s.ClientCert(t, user)
	info := transport.TLSInfo{CertFile: cf.Cert, KeyFile: cf.Key, TrustedCAFile: s.pki.caFile}
	tlsCfg, err := info.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pki is a throw-away CA in a test's temporary directory.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	serial int64
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcdtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.caKey, p.serial = key, 1
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

// issue signs a certificate for cn: a server certificate for 127.0.0.1,
// or a client certificate.
func (p *pki) issue(t testing.TB, cn string, server bool) CertFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return CertFiles{Cert: p.write(t, cn+".pem", "CERTIFICATE", der), Key: p.write(t, cn+"-key.pem", "EC PRIVATE KEY", keyDER)}
}

func (p *pki) write(t testing.TB, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
