package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/httpserver"
	"github.com/ofctl-agent/ofctl-agent/pkg/metrics"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
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
	setMemoryLimit(cfg, log)
	loop := metrics.NewLoopMetrics()
	dns, inherited, err := newResolver(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if dns != nil {
		defer dns.Close()
	}
	ag, backend, err := newAgent(cfg, log, loop, dns)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	relaxGCUntilReady(ctx, ag.FirstReady(), log)
	plugin, err := newDockerPlugin(cfg, ag, backend.source.Current, log)
	if err != nil {
		log.Error("cannot start the docker plugin", "err", err)
		return 1
	}
	extra := []prometheus.Collector{backend.collector, natCollector(ag)}
	if plugin != nil {
		extra = append(extra, plugin.srv.Metrics(), plugin.namer)
	}
	var handlers map[string]http.Handler
	if dns != nil {
		extra = append(extra, dns.Metrics())
		handlers = map[string]http.Handler{namesPattern: namesHandler(dns)}
	}
	srv, closeHTTP, err := serveHTTP(ctx, cfg, ag, loop, log, handlers, extra...)
	if err != nil {
		log.Error("cannot serve http", "addr", cfg.Listen, "err", err)
		return 1
	}
	defer closeHTTP()
	closeAPI, err := serveAPI(cfg.APISocket, ag, log)
	if err != nil {
		log.Error("cannot serve the local API", "socket", cfg.APISocket, "err", err)
		return 1
	}
	defer closeAPI()
	if plugin != nil {
		ctx, cancel := context.WithCancel(ctx)
		stopPlugin, err := plugin.serve(ctx, log)
		if err != nil {
			cancel()
			log.Error("cannot serve the docker plugin", "socket", cfg.DockerPlugin, "err", err)
			return 1
		}
		defer stopPlugin()
		defer cancel()
	}
	log.Info("ofctl-agent starting", "version", version, "node", cfg.NodeName, "bridge", cfg.Bridge,
		"openflow", cfg.OpenFlow, "ovsdb", cfg.OVSDB, "http", srv.Addr(), "web_config", cfg.WebConfigFile,
		"health_http", srv.HealthAddr(), "pprof", cfg.Pprof, "api_socket", cfg.APISocket, "docker_plugin", cfg.DockerPlugin)
	closeUnusedOnReady(ctx, inherited, ag)
	if err := ag.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	storeDNS(dns, log) // the next agent serves them (dnshandoff.go)
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

func newAgent(cfg config.Config, log *slog.Logger, loop *metrics.LoopMetrics, dns *resolver.Server) (*agent.Agent, *clusterBackend, error) {
	var ag atomic.Pointer[agent.Agent]
	backend, err := newClusterBackend(cfg, log, func(kind string, err error) {
		if a := ag.Load(); a != nil {
			a.Reject(kind, err)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	ac := agent.Config{NodeName: cfg.NodeName, OVSDB: cfg.OVSDB, OpenFlow: cfg.OpenFlow,
		Bridge:     ovsdb.BridgeConfig{Name: cfg.Bridge, DatapathType: cfg.DatapathType},
		TunnelPort: cfg.TunnelPort, TunnelOFPort: cfg.TunnelOFPort, Cluster: backend.source,
		VerifyEvery: cfg.VerifyEvery, MonitoredVerifyEvery: cfg.MonitorVerify, NoFlowMonitor: !cfg.FlowMonitor,
		AllRemoteFlows: cfg.AllRemoteFlows,
		EchoInterval:   cfg.EchoInterval, DeadInterval: cfg.DeadInterval,
		Logger: log, OnReady: func() { sdNotify("READY=1") }, OnSync: loop.ObserveSync, OnApply: loop.ObserveApply}
	if backend.publisher != nil {
		ac.Publisher = backend.publisher
	}
	if cfg.BridgeMAC != "" {
		mac, err := net.ParseMAC(cfg.BridgeMAC)
		if err != nil {
			return nil, nil, fmt.Errorf("bridge-mac: %w", err)
		}
		ac.Bridge.HWAddr = mac
	}
	if cfg.TunnelIP != "" {
		ac.TunnelIP = netip.MustParseAddr(cfg.TunnelIP) // validated by config
	}
	allowed, err := cfg.UnderlayAllowList()
	if err != nil {
		return nil, nil, err // validated by config
	}
	ac.NAT = &agent.NATConfig{Allowed: allowed, NetNS: cfg.NetNSHost}
	withResolver(&ac, dns)
	gws, err := cfg.GatewayMap()
	if err != nil {
		return nil, nil, err // validated by config
	}
	ac.Gateway = &agent.GatewayConfig{NetNS: cfg.NetNSHost, Addresses: gws, MTU: cfg.MTU}
	a, err := agent.New(ac)
	if err != nil {
		return nil, nil, err
	}
	ag.Store(a)
	return a, backend, nil
}

// metricsConnDelay bounds how long the metrics' own OpenFlow connection
// waits for the agent to be ready.
const metricsConnDelay = 2 * time.Second

// serveHTTP starts the HTTP server: /metrics, /healthz, /readyz,
// /debug/pprof/ (with --pprof), and /healthz and /readyz on
// --health-listen; the debug API mounts its handlers with srv.Mount. extra
// collectors, those not nil, are registered too (the etcd backend's state,
// the Docker plugin's calls), handlers mounted beside the debug API's
// (/debug/names). closeHTTP stops
// the server, the metrics' background reads and their OpenFlow connection.
func serveHTTP(ctx context.Context, cfg config.Config, ag *agent.Agent, loop *metrics.LoopMetrics, log *slog.Logger,
	handlers map[string]http.Handler, extra ...prometheus.Collector) (srv *httpserver.Server, closeHTTP func(), err error) {
	// The OVS collectors read on a connection of their own (the agent's
	// while it is down): on the agent's, its flow_mods would wait behind
	// their replies. It connects once the agent is ready (or
	// metricsConnDelay after the start): a start's dump needs Open
	// vSwitch, and both cores, to itself.
	sw, stopSwitch, err := metrics.OwnSwitchAfter(ctx, openflow.Config{Addr: cfg.OpenFlow, EchoInterval: cfg.EchoInterval,
		DeadInterval: cfg.DeadInterval, Logger: log.With("connection", "metrics")}, metrics.AgentSwitch(ag),
		ag.FirstReady(), metricsConnDelay)
	if err != nil {
		return nil, nil, err
	}
	src := metrics.Sources{Status: ag.Status, Loop: loop, Logger: log,
		OVS: metrics.OVSConfig{Switch: sw, Ports: metrics.AgentPortLabels(ag)}}
	for _, c := range extra {
		if c != nil {
			src.Extra = append(src.Extra, c)
		}
	}
	h := metrics.NewHandler(src)
	mounted := debugHandlers(cfg, ag, log)
	maps.Copy(mounted, handlers)
	stop := func() { h.Close(); stopSwitch() }
	defer func() {
		if err != nil {
			stop()
		}
	}()
	srv, err = httpserver.New(httpserver.Config{Addr: cfg.Listen, WebConfigFile: cfg.WebConfigFile, Metrics: h,
		HealthAddr: cfg.HealthListen, Pprof: cfg.Pprof, Logger: log, Handlers: mounted, Ready: func() error {
			if !ag.Ready() {
				return errors.New("pipeline not (yet) in OVS")
			}
			return nil
		}})
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, nil, err
	}
	return srv, func() { srv.Close(); stop() }, nil
}

// natCollector exports the gateways' packet filter (nil without one).
func natCollector(ag *agent.Agent) prometheus.Collector {
	if k := ag.NAT(); k != nil {
		return metrics.NewNATCollector(k)
	}
	return nil
}

// serveAPI serves the agent's local API (pkg/agentapi) on a unix socket
// only root can open. Malformed requests are logged and counted as invalid
// inputs (kind agent-api), every request by call and result.
func serveAPI(socket string, ag *agent.Agent, log *slog.Logger) (closeAPI func(), err error) {
	l, err := unixsock.Listen(socket, 0o600)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Handler: agentapi.Handler(ag.API(), agentapi.HandlerOptions{Logger: log,
			OnInvalid: func(err error) { ag.Reject("agent-api", err) }, OnRequest: ag.CountAPIRequest})}
	go func() { _ = srv.Serve(l) }()
	return func() { _ = srv.Close() }, nil
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
