package openflow

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultEchoInterval   = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxQueuedBytes = 1 << 20
	DefaultSentHistory    = 1 << 14
	DefaultMaxLateErrors  = 4096
)

// Config describes one OpenFlow connection. Only Addr is required.
type Config struct {
	// Addr is "unix:PATH" (e.g. a bridge's <rundir>/br-int.mgmt socket) or
	// "tcp:HOST:PORT".
	Addr string
	// EchoInterval: when the switch was silent this long, send an echo
	// request. Default 5s.
	EchoInterval time.Duration
	// DeadInterval: when the switch was silent this long, close the
	// connection with ErrDeadPeer. Default 3*EchoInterval.
	DeadInterval time.Duration
	// RequestTimeout bounds the handshake and every request whose context
	// has no deadline. Default 10s.
	RequestTimeout time.Duration
	// MaxQueuedBytes bounds the bytes queued for the socket; Send blocks
	// while the queue is full. Default 1 MiB.
	MaxQueuedBytes int
	// SentHistory is how many sent messages are remembered to name the
	// message an error refers to. Default 16384 (640 KiB): OVS answers a
	// message within the bytes in flight (MaxQueuedBytes and the socket's
	// buffers, a few thousand flow_mods), and an error beyond the record
	// is still named from the message the switch echoes (was 131072, 5 MiB
	// held for the agent's life).
	SentHistory int
	// MaxLateErrors bounds the errors of fire-and-forget messages kept until
	// the next Barrier collects them; older ones are dropped (and logged).
	// Default 4096.
	MaxLateErrors int
	// Logger receives connection events. Default: slog.Default().
	Logger *slog.Logger
	// DialContext replaces net.Dialer.DialContext (tests).
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)

	// portStatusSink also receives every port-status event (used by Client).
	portStatusSink func(PortStatus)
	// recvHook sees every message read from the switch (tests).
	recvHook func([]byte)
}

// withDefaults returns cfg with zero fields filled and checks it.
func (cfg Config) withDefaults() (Config, error) {
	if _, _, err := splitAddr(cfg.Addr); err != nil {
		return cfg, err
	}
	if cfg.EchoInterval <= 0 {
		cfg.EchoInterval = DefaultEchoInterval
	}
	if cfg.DeadInterval <= 0 {
		cfg.DeadInterval = 3 * cfg.EchoInterval
	}
	if cfg.DeadInterval < cfg.EchoInterval {
		return cfg, fmt.Errorf("openflow: dead interval %s shorter than echo interval %s", cfg.DeadInterval, cfg.EchoInterval)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.SentHistory <= 0 {
		cfg.SentHistory = DefaultSentHistory
	}
	if cfg.MaxLateErrors <= 0 {
		cfg.MaxLateErrors = DefaultMaxLateErrors
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialContext == nil {
		var d net.Dialer
		cfg.DialContext = d.DialContext
	}
	return cfg, nil
}

// splitAddr turns "unix:PATH" / "tcp:HOST:PORT" into a network and address.
func splitAddr(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, ":")
	switch {
	case !ok || address == "":
		return "", "", fmt.Errorf("openflow: address %q: want unix:PATH or tcp:HOST:PORT", addr)
	case network == "unix":
		return network, address, nil
	case network == "tcp":
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("openflow: address %q: %w", addr, err)
		}
		return network, address, nil
	}
	return "", "", fmt.Errorf("openflow: address %q: unsupported network %q (want unix or tcp)", addr, network)
}
