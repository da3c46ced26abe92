package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
)

// clusterBackend is where the cluster view comes from: the static file, or
// etcd with this host's records published there.
type clusterBackend struct {
	source    cluster.Source
	publisher *etcd.Publisher      // etcd only
	collector prometheus.Collector // etcd only: connection state
}

// newClusterBackend builds the configured backend; reject reports bad
// input (the agent's counters).
func newClusterBackend(cfg config.Config, log *slog.Logger, reject func(kind string, err error)) (*clusterBackend, error) {
	if cfg.ClusterBackend != "etcd" {
		src, err := cluster.NewStatic(cluster.StaticConfig{Path: cfg.ClusterFile, Logger: log,
			OnInvalid: func(err error) { reject("cluster", err) }})
		if err != nil {
			return nil, err // it names the cluster file
		}
		return &clusterBackend{source: src}, nil
	}
	networks, err := localNetworks(cfg.ClusterFile, log)
	if err != nil {
		return nil, err
	}
	password, err := cfg.Etcd.Password()
	if err != nil {
		return nil, err
	}
	client, err := etcd.NewClient(etcd.ClientConfig{Endpoints: cfg.Etcd.EndpointList(), DialTimeout: cfg.Etcd.DialTimeout,
		CertFile: cfg.Etcd.CertFile, KeyFile: cfg.Etcd.KeyFile, CAFile: cfg.Etcd.CAFile,
		Username: cfg.Etcd.Username, Password: password})
	if err != nil {
		return nil, err
	}
	pub, err := etcd.NewPublisher(etcd.PublisherConfig{Client: client, Prefix: cfg.Etcd.Prefix, Host: cfg.NodeName,
		TunnelIP: netip.MustParseAddr(cfg.TunnelIP), TTL: cfg.Etcd.LeaseTTL, Logger: log}) // tunnel-ip: validated by config
	if err != nil {
		return nil, err
	}
	// The hosts of the previous version the source finds decide whether
	// the publisher writes its claims in the host layout too.
	src, err := etcd.New(etcd.Config{Client: client, Prefix: cfg.Etcd.Prefix, Networks: networks, Logger: log,
		OnReject: reject, ProbeTimeout: cfg.Etcd.DialTimeout, Scoped: !cfg.AllRemoteFlows,
		OnHostLayoutReaders: pub.SetHostLayoutReaders})
	if err != nil {
		return nil, err
	}
	log.Info("cluster view from etcd", "endpoints", cfg.Etcd.Endpoints, "prefix", cfg.Etcd.Prefix,
		"user", cfg.Etcd.Username, "lease_ttl", cfg.Etcd.LeaseTTL, "local_networks", len(networks))
	return &clusterBackend{source: src, publisher: pub, collector: etcd.NewCollector(src, pub)}, nil
}

// localNetworks reads the networks of the cluster file, if there is one:
// with etcd, networks may be kept there or in etcd.
func localNetworks(path string, log *slog.Logger) ([]cluster.Network, error) {
	if path == "" {
		return nil, nil
	}
	v, err := cluster.LoadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(v.Hosts) > 0 {
		log.Warn("cluster file: hosts are ignored with the etcd backend (they publish themselves)", "path", path)
	}
	return v.Networks, nil
}
