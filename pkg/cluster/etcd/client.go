package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DefaultDialTimeout bounds connecting and each health probe.
const DefaultDialTimeout = 5 * time.Second

// ClientConfig says how to reach etcd.
type ClientConfig struct {
	Endpoints   []string      // e.g. https://10.0.0.1:2379
	DialTimeout time.Duration // default DefaultDialTimeout
	// TLS client certificate, key and the CA that signed the servers'
	// certificates; all empty for plain http endpoints. With etcd's
	// --client-cert-auth, the certificate's CN is the etcd user.
	CertFile, KeyFile, CAFile string
	// Username and Password: an etcd user (auth enabled); both or neither.
	// The password is never logged.
	Username, Password string
}

// String describes the configuration without the password.
func (cfg ClientConfig) String() string {
	pw := ""
	if cfg.Password != "" {
		pw = " password=<set>"
	}
	return fmt.Sprintf("endpoints=%v user=%q cert=%q ca=%q%s", cfg.Endpoints, cfg.Username, cfg.CertFile, cfg.CAFile, pw)
}

// NewClient returns an etcd client. It does not wait for a connection: the
// source and publisher retry until etcd answers.
func NewClient(cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("etcd: a user needs both a name and a password")
	}
	tlsCfg, err := cfg.tls()
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.DialTimeout,
		TLS:                  tlsCfg,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(), // the source and publisher log state changes themselves
		// Reconnect quickly when etcd comes back: leases must be renewed
		// within their TTL, and gRPC's default backoff grows to two minutes.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: cfg.DialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return c, nil
}

func (cfg ClientConfig) tls() (*tls.Config, error) {
	if cfg.CertFile == "" && cfg.KeyFile == "" && cfg.CAFile == "" {
		for _, ep := range cfg.Endpoints {
			if strings.HasPrefix(ep, "https://") {
				return &tls.Config{MinVersion: tls.VersionTLS12}, nil // system roots
			}
		}
		return nil, nil
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("etcd: a client certificate needs both cert and key files")
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd tls: %w", err)
	}
	return c, nil
}
