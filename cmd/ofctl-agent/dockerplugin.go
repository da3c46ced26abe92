package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/dockerplugin"
)

// dockerPlugin is the Docker network and IPAM driver served in the agent's
// process (--docker-plugin): addresses from the agent's allocator, ports on
// the agent's OVSDB client, the cluster view the agent follows.
type dockerPlugin struct {
	srv   *dockerplugin.Server
	links *dockerplugin.NetlinkLinks
}

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
	eps, err := dockerplugin.NewHostEndpoints(dockerplugin.HostConfig{Ports: ag.OVSDB(), Links: links,
		Network: ag.API().Network, Ready: func() error {
			if st := ag.API().Status(); !st.Ready {
				return errors.New(st.Reason)
			}
			return nil
		}, Logger: log})
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
	return &dockerPlugin{srv: srv, links: links}, nil
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.srv.ServeListener(ctx, l); err != nil {
			log.Error("docker plugin stopped", "err", err)
		}
	}()
	return func() { wg.Wait(); p.links.Close() }, nil
}
