package config

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// DNS holds the settings of the resolver the agent serves on each
// network's gateway address (docs/dns.md).
type DNS struct {
	Enabled bool   `yaml:"dns"`        // serve it (only networks with a gateway on this host are served)
	Domain  string `yaml:"dns-domain"` // the cluster domain: <name>.<network>.<domain>
	// Upstreams: resolvers for other names, comma-separated IPv4
	// addresses with an optional :port; "": /etc/resolv.conf's.
	Upstreams string `yaml:"dns-upstreams"`
}

// DefaultDNSDomain is the default cluster domain (resolver.DefaultDomain).
const DefaultDNSDomain = "ofctl.internal"

func defaultDNS() DNS { return DNS{Enabled: true, Domain: DefaultDNSDomain} }

func (d *DNS) bind(fs *flag.FlagSet) {
	fs.BoolVar(&d.Enabled, "dns", d.Enabled, "answer containers' DNS queries on each network's gateway address, port 53 (names of the network's containers, others forwarded)")
	fs.StringVar(&d.Domain, "dns-domain", d.Domain, "cluster DNS domain: containers are <name>.<network>.<domain>")
	fs.StringVar(&d.Upstreams, "dns-upstreams", d.Upstreams, "resolvers for names outside the cluster, comma-separated IPv4[:port] (default: the nameservers of /etc/resolv.conf)")
}

// UpstreamList returns dns-upstreams as addresses (port 53 unless given);
// nil when none is set.
func (d DNS) UpstreamList() ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, item := range strings.Split(d.Upstreams, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(item)
		if err != nil {
			var a netip.Addr
			if a, err = netip.ParseAddr(item); err == nil {
				ap = netip.AddrPortFrom(a, 53)
			}
		}
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
			return nil, fmt.Errorf("dns-upstreams %q: want IPv4 addresses with an optional :port, comma-separated", item)
		}
		out = append(out, ap)
	}
	return out, nil
}

func (d DNS) validate() []error {
	var errs []error
	if _, err := d.UpstreamList(); err != nil {
		errs = append(errs, err)
	}
	dom := strings.TrimSuffix(d.Domain, ".")
	if dom == "" || len(dom) > 200 {
		errs = append(errs, fmt.Errorf("dns-domain %q: want DNS labels separated by dots", d.Domain))
		return errs
	}
	for _, label := range strings.Split(dom, ".") {
		if err := endpoint.ValidateName(label); err != nil {
			errs = append(errs, fmt.Errorf("dns-domain %q: %w", d.Domain, err))
			break
		}
	}
	return errs
}
