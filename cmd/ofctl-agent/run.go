package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/metrics"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// runAgent is `ofctl-agent run`: the daemon. It returns when ctx ends
// (SIGTERM/SIGINT), leaving every flow in place.
func runAgent(ctx context.Context, args []string, _, stderr io.Writer) int {
	cfg, err := config.Load(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: ofctl-agent run [-config FILE] [flags]")
		config.Usage(stderr)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ofctl-agent run: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ag, err := newAgent(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	srv, err := serveHTTP(ctx, cfg.Listen, ag, log)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "err", err)
		return 1
	}
	defer srv.Close()
	log.Info("ofctl-agent starting", "version", version, "node", cfg.NodeName, "bridge", cfg.Bridge,
		"openflow", cfg.OpenFlow, "ovsdb", cfg.OVSDB, "http", srv.Addr)
	if err := ag.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	log.Info("ofctl-agent stopped; flows left in place")
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newAgent(cfg config.Config, log *slog.Logger) (*agent.Agent, error) {
	var ag atomic.Pointer[agent.Agent]
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: cfg.ClusterFile, Logger: log,
		OnInvalid: func(err error) {
			if a := ag.Load(); a != nil {
				a.Reject("cluster", err)
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	ac := agent.Config{NodeName: cfg.NodeName, OVSDB: cfg.OVSDB, OpenFlow: cfg.OpenFlow,
		Bridge:     ovsdb.BridgeConfig{Name: cfg.Bridge, DatapathType: cfg.DatapathType},
		TunnelPort: cfg.TunnelPort, TunnelOFPort: cfg.TunnelOFPort, Cluster: src,
		VerifyEvery: cfg.VerifyEvery, EchoInterval: cfg.EchoInterval, DeadInterval: cfg.DeadInterval,
		Logger: log, OnReady: func() { sdNotify("READY=1") }}
	if cfg.BridgeMAC != "" {
		mac, err := net.ParseMAC(cfg.BridgeMAC)
		if err != nil {
			return nil, fmt.Errorf("bridge-mac: %w", err)
		}
		ac.Bridge.HWAddr = mac
	}
	if cfg.TunnelIP != "" {
		ac.TunnelIP = netip.MustParseAddr(cfg.TunnelIP) // validated by config
	}
	a, err := agent.New(ac)
	if err != nil {
		return nil, err
	}
	ag.Store(a)
	return a, nil
}

// serveHTTP starts the metrics and health endpoints.
func serveHTTP(ctx context.Context, addr string, ag *agent.Agent, log *slog.Logger) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewAgentCollector(ag.Status), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ag.Status().Ready {
			http.Error(w, "not ready: pipeline not (yet) in OVS", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return srv, nil
}

// sdNotify tells systemd (Type=notify) about our state; a no-op elsewhere.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
