package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// newResolver builds the resolver of the gateways (nil with --dns=false):
// its sockets, and those to the upstreams, are opened in --netns-host,
// where the gateway ports are. It serves no network until the agent hands
// it its gateways, after loading the names.
//
// Under systemd it serves the sockets the previous agent stored
// (dnshandoff.go): the returned Inherited, if not nil, holds those no
// network has taken yet.
func newResolver(cfg config.Config, log *slog.Logger) (*resolver.Server, *resolver.Inherited, error) {
	if !cfg.DNS.Enabled {
		return nil, nil, nil
	}
	ups, err := cfg.DNS.UpstreamList() // validated by config
	if err != nil {
		return nil, nil, err
	}
	ns := resolver.NetNS{Path: cfg.NetNSHost}
	rc := resolver.Config{Domain: cfg.DNS.Domain, Upstreams: ups, Listen: ns.Listen,
		Forward: resolver.ForwardConfig{Dial: ns.Dial}, Logger: log.With("component", "dns")}
	in := inheritDNS(&rc, log)
	srv, err := resolver.New(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: %w", err)
	}
	return srv, in, nil
}

// withResolver makes the agent feed srv (names and gateways) when it is set.
func withResolver(ac *agent.Config, srv *resolver.Server) {
	if srv != nil {
		ac.Names, ac.DNS = srv.Names(), srv
	}
}

// namesPattern serves what each network's resolver answers.
const namesPattern = "GET /debug/names"

// NamesReport is the answer of /debug/names.
type NamesReport struct {
	Domain    string                  `json:"domain"`
	Synced    bool                    `json:"synced"` // the name sources delivered their initial state
	Upstreams []netip.AddrPort        `json:"upstreams"`
	Networks  []resolver.NetworkNames `json:"networks"`
}

// namesHandler serves /debug/names: JSON with ?format=json, else text.
func namesHandler(srv *resolver.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := NamesReport{Domain: srv.Domain(), Synced: srv.Names().Synced(), Upstreams: srv.Upstreams(), Networks: srv.Networks()}
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(rep)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "domain %s, names loaded %v, upstreams %v\n", rep.Domain, rep.Synced, rep.Upstreams)
		for _, n := range rep.Networks {
			fmt.Fprintf(w, "network %s on %s for %s (zone %s): %d names\n", n.Network, n.Addr, n.Subnet, n.Zone, len(n.Names))
			for _, e := range n.Names {
				fmt.Fprintf(w, "  %s", e.Name)
				for _, a := range e.Addrs {
					fmt.Fprintf(w, " %s", a)
				}
				fmt.Fprintln(w)
			}
		}
	})
}
