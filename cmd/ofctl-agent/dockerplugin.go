package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/dockerplugin"
)

// dockerPlugin is the Docker network and IPAM driver served in the agent's
// process (--docker-plugin): addresses from the agent's allocator, ports on
// the agent's OVSDB client, the cluster view the agent follows.
type dockerPlugin struct {
	srv    *dockerplugin.Server
	eps    *dockerplugin.HostEndpoints
	namer  *dockerplugin.Namer // names the endpoints from the Engine API
	links  *dockerplugin.NetlinkLinks
	synced <-chan struct{} // the agent's OVSDB view is read: sweeps may go
}

// sweepEvery is how often the plugin looks for ports of dead endpoints
// (dockerplugin.HostEndpoints.Sweep), after a first look at start.
const sweepEvery = time.Minute

// newDockerPlugin builds the plugin when cfg asks for one (nil otherwise).
func newDockerPlugin(cfg config.Config, ag *agent.Agent, view func() (cluster.View, bool), log *slog.Logger) (*dockerPlugin, error) {
	if cfg.DockerPlugin == "" {
		return nil, nil
	}
	links, err := dockerplugin.OpenNetlinkLinks(cfg.NetNSHost) // dockerd runs in the host's stack
	if err != nil {
		return nil, err
	}
	log = log.With("component", "docker-plugin")
	namer, err := dockerplugin.NewNamer(dockerplugin.NamerConfig{DockerHost: cfg.DockerHost, Ports: ag.OVSDB(), Logger: log,
		OnInvalid: func(err error) { ag.Reject("docker-plugin", err) }})
	if err != nil {
		links.Close()
		return nil, err
	}
	eps, err := dockerplugin.NewHostEndpoints(dockerplugin.HostConfig{Ports: ag.OVSDB(), Links: links,
		Network: ag.API().Network, Ready: func() error {
			if st := ag.API().Status(); !st.Ready {
				return errors.New(st.Reason)
			}
			return nil
		}, OnJoined: func(ep dockerplugin.Endpoint) { namer.Name(ep.ID, ep.NetworkID) }, Logger: log})
	if err != nil {
		links.Close()
		return nil, err
	}
	srv, err := dockerplugin.New(dockerplugin.Config{Socket: cfg.DockerPlugin, StateFile: cfg.DockerState, View: view,
		Addresses: dockerplugin.NewHostAddresses(ag.Addresses()), Endpoints: eps, Logger: log,
		OnInvalid: func(call string, err error) { ag.Reject("docker-plugin", err) }})
	if err != nil {
		links.Close()
		return nil, err
	}
	return &dockerPlugin{srv: srv, eps: eps, namer: namer, links: links, synced: ag.OVSDB().Synced()}, nil
}

// serve listens on the plugin's socket at once (dockerd must find it
// before it starts containers) and answers until ctx ends; stop waits for
// that and releases the namespace.
func (p *dockerPlugin) serve(ctx context.Context, log *slog.Logger) (stop func(), err error) {
	l, err := dockerplugin.Listen(p.srv.Socket())
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); p.namer.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := p.srv.ServeListener(ctx, l); err != nil {
			log.Error("docker plugin stopped", "err", err)
		}
	}()
	go func() { defer wg.Done(); p.sweep(ctx, log) }()
	return func() { wg.Wait(); p.links.Close() }, nil
}

// sweep removes the ports of dead Docker endpoints once the agent has read
// OVSDB, then every sweepEvery.
func (p *dockerPlugin) sweep(ctx context.Context, log *slog.Logger) {
	select {
	case <-p.synced:
	case <-ctx.Done():
		return
	}
	p.namer.Adopt() // ports left without a name (the agent was down after Join)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if _, err := p.eps.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("docker plugin: removing ports of dead endpoints failed", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
