// Package config holds the agent's settings: defaults, a YAML file, and
// command-line flags that override the file. Parse once in main and pass the
// Config down; nothing here is global.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/dockerplugin"
)

// Config is everything `ofctl-agent run` needs. YAML keys are the flag names.
type Config struct {
	NodeName       string `yaml:"node-name"`       // this host's name in the cluster view
	Bridge         string `yaml:"bridge"`          // integration bridge the agent owns
	OVSDB          string `yaml:"ovsdb"`           // OVSDB endpoint
	OVSRunDir      string `yaml:"ovs-rundir"`      // where ovs-vswitchd puts <bridge>.mgmt
	OpenFlow       string `yaml:"openflow"`        // OpenFlow endpoint; default unix:<ovs-rundir>/<bridge>.mgmt
	VswitchdCtl    string `yaml:"vswitchd-ctl"`    // ovs-vswitchd unixctl socket (ofproto/trace); default <ovs-rundir>/ovs-vswitchd.<pid>.ctl
	DatapathType   string `yaml:"datapath-type"`   // "system" (kernel) or "netdev" (userspace)
	BridgeMAC      string `yaml:"bridge-mac"`      // other_config:hwaddr; default derived from node and bridge
	TunnelIP       string `yaml:"tunnel-ip"`       // this host's underlay address (GRE local end)
	TunnelPort     string `yaml:"tunnel-port"`     // name of the flow-based GRE port
	TunnelOFPort   int    `yaml:"tunnel-ofport"`   // its fixed ofport_request
	ClusterFile    string `yaml:"cluster-file"`    // static cluster view (YAML); with etcd, optional networks
	ClusterBackend string `yaml:"cluster-backend"` // "file" (default) or "etcd"
	// AllRemoteFlows: program every remote endpoint of the view, not only
	// those of networks with a local endpoint here (docs/etcd.md).
	AllRemoteFlows bool          `yaml:"all-remote-flows"`
	Etcd           Etcd          `yaml:",inline"`
	Listen         string        `yaml:"listen"`          // HTTP: metrics, debug, health
	HealthListen   string        `yaml:"health-listen"`   // optional: /healthz and /readyz alone, no auth
	Pprof          bool          `yaml:"pprof"`           // serve /debug/pprof/
	APISocket      string        `yaml:"api-socket"`      // the local API (pkg/agentapi): root-only unix socket
	DockerPlugin   string        `yaml:"docker-plugin"`   // Docker network+IPAM driver socket; "" serves none
	DockerState    string        `yaml:"docker-state"`    // the Docker networks' bindings (written atomically)
	DockerHost     string        `yaml:"docker-host"`     // the Engine API, where the plugin finds containers' names
	LogFormat      string        `yaml:"log-format"`      // text or json
	LogLevel       string        `yaml:"log-level"`       // debug, info, warn, error
	VerifyEvery    time.Duration `yaml:"verify-interval"` // how often OVS is compared with the desired flows (without the flow monitor)
	EchoInterval   time.Duration `yaml:"echo-interval"`   // OpenFlow keepalive
	DeadInterval   time.Duration `yaml:"dead-interval"`   // silence after which the switch is declared gone
	WebConfigFile  string        `yaml:"web-config-file"` // exporter-toolkit TLS/basic-auth file
	// FlowMonitor: repair the flow changes OVS reports as they come;
	// MonitorVerify: how often OVS is then compared in full (safety net).
	FlowMonitor   bool          `yaml:"flow-monitor"`
	MonitorVerify time.Duration `yaml:"monitored-verify-interval"`
	// UnderlayAllow: comma-separated IPv4 addresses or prefixes of the
	// underlay that containers may reach through the gateways after all
	// (every host's tunnel address is blocked otherwise; docs/gateway.md).
	UnderlayAllow string `yaml:"underlay-allow"`
	// NetNSHost is the network namespace (a path) of the host's stack,
	// where ovs-vswitchd puts the gateway ports: the packet filter and
	// forwarding flags kept there; "": the agent's own.
	NetNSHost string `yaml:"netns-host"`
	DNS       DNS    `yaml:",inline"` // the resolver on the gateways (dns.go)
	// MTU of the containers' and gateways' interfaces; 0: the MTU of the
	// interface holding tunnel-ip minus 42 (GRE with a key over IPv4).
	MTU int `yaml:"mtu"`
	// Gateways: this host's gateway address per network where the cluster
	// view sets none, "blue=10.100.7.1,red=10.200.7.1" (etcd mode).
	Gateways string `yaml:"gateways"`
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT's
	// syntax, "off" for none; the GOMEMLIMIT variable wins): the heap is
	// collected before the process's Go memory passes it.
	MemoryLimit string `yaml:"memory-limit"`
}

// GatewayMap returns gateways as network -> address. Validate has
// checked it.
func (c Config) GatewayMap() (map[string]netip.Addr, error) {
	out := map[string]netip.Addr{}
	for _, item := range strings.Split(c.Gateways, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		network, addr, ok := strings.Cut(item, "=")
		a, err := netip.ParseAddr(strings.TrimSpace(addr))
		if network = strings.TrimSpace(network); !ok || network == "" || err != nil || !a.Is4() {
			return nil, fmt.Errorf("gateways %q: want network=IPv4 address, comma-separated", item)
		}
		if _, dup := out[network]; dup {
			return nil, fmt.Errorf("gateways: network %s given twice", network)
		}
		out[network] = a
	}
	return out, nil
}

// UnderlayAllowList returns underlay-allow as prefixes (a bare address is
// a /32). Validate has checked it.
func (c Config) UnderlayAllowList() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(c.UnderlayAllow, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			var a netip.Addr
			if a, err = netip.ParseAddr(item); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("underlay-allow %q: want IPv4 addresses or prefixes, comma-separated", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Etcd holds the settings of the etcd cluster backend.
type Etcd struct {
	Endpoints    string        `yaml:"etcd-endpoints"`     // comma-separated client URLs
	Prefix       string        `yaml:"etcd-prefix"`        // key prefix
	CertFile     string        `yaml:"etcd-cert"`          // TLS client certificate
	KeyFile      string        `yaml:"etcd-key"`           // its key
	CAFile       string        `yaml:"etcd-ca"`            // CA of the servers' certificates
	Username     string        `yaml:"etcd-username"`      // etcd user (etcd auth); none when etcd takes it from the client certificate's CN
	PasswordFile string        `yaml:"etcd-password-file"` // file holding that user's password (never on the command line)
	DialTimeout  time.Duration `yaml:"etcd-dial-timeout"`  // connecting and each health probe
	LeaseTTL     time.Duration `yaml:"etcd-lease-ttl"`     // how long this host's records outlive the agent
}

// EndpointList returns the etcd endpoints as a list.
func (e Etcd) EndpointList() []string {
	var out []string
	for _, ep := range strings.Split(e.Endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, ep)
		}
	}
	return out
}

// Password reads the etcd user's password: the first line of PasswordFile
// ("" without a user). It is never logged.
func (e Etcd) Password() (string, error) {
	if e.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(e.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("etcd-password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw = strings.TrimSuffix(pw, "\r"); pw == "" {
		return "", fmt.Errorf("etcd-password-file %s: empty first line", e.PasswordFile)
	}
	return pw, nil
}

// Default returns the documented defaults.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:       host,
		Bridge:         "br-int",
		OVSDB:          "unix:/var/run/openvswitch/db.sock",
		OVSRunDir:      "/var/run/openvswitch",
		DatapathType:   "system",
		TunnelPort:     "ofctl-gre0",
		TunnelOFPort:   65000,
		ClusterFile:    "/etc/ofctl-agent/cluster.yaml",
		ClusterBackend: "file",
		Etcd:           Etcd{Prefix: "/ofctl-agent", DialTimeout: 5 * time.Second, LeaseTTL: 10 * time.Second},
		Listen:         "127.0.0.1:9750",
		APISocket:      agentapi.DefaultSocket,
		DockerState:    dockerplugin.DefaultStateFile,
		DockerHost:     dockerplugin.DefaultDockerHost,
		LogFormat:      "text",
		LogLevel:       "info",
		VerifyEvery:    time.Second,
		EchoInterval:   2 * time.Second,
		DeadInterval:   6 * time.Second,
		FlowMonitor:    true,
		MonitorVerify:  5 * time.Minute,
		MemoryLimit:    "off",
		DNS:            defaultDNS(),
	}
}

// Load parses args for `run`: -config names a YAML file whose values replace
// the defaults; flags given explicitly replace both. Parsing is done twice:
// once to find the file, once more on top of what the file set.
func Load(args []string) (Config, error) {
	probe := Default()
	file, err := parse(&probe, args)
	if err != nil {
		return probe, err
	}
	c := Default()
	if file != "" {
		if err := c.readFile(file); err != nil {
			return c, err
		}
	}
	if _, err := parse(&c, args); err != nil {
		return c, err
	}
	if c.OpenFlow == "" {
		c.OpenFlow = "unix:" + filepath.Join(c.OVSRunDir, c.Bridge+".mgmt")
	}
	return c, c.Validate()
}

// Usage prints the flags of `run` with their defaults.
func Usage(w io.Writer) {
	c := Default()
	fs := newFlagSet(&c, new(string))
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func parse(c *Config, args []string) (string, error) {
	var file string
	fs := newFlagSet(c, &file)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return file, nil
}

func newFlagSet(c *Config, file *string) *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(file, "config", "", "YAML config file (flags override it)")
	c.bind(fs)
	return fs
}

func (c *Config) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "this host's name in the cluster view")
	fs.StringVar(&c.Bridge, "bridge", c.Bridge, "integration bridge the agent owns")
	fs.StringVar(&c.OVSDB, "ovsdb", c.OVSDB, "OVSDB endpoint (unix:PATH or tcp:HOST:PORT)")
	fs.StringVar(&c.OVSRunDir, "ovs-rundir", c.OVSRunDir, "OVS run directory holding <bridge>.mgmt")
	fs.StringVar(&c.OpenFlow, "openflow", c.OpenFlow, "OpenFlow endpoint (default unix:<ovs-rundir>/<bridge>.mgmt)")
	fs.StringVar(&c.VswitchdCtl, "vswitchd-ctl", c.VswitchdCtl, "ovs-vswitchd unixctl socket for /debug/trace (default <ovs-rundir>/ovs-vswitchd.<pid>.ctl, pid from ovs-vswitchd.pid)")
	fs.StringVar(&c.DatapathType, "datapath-type", c.DatapathType, "bridge datapath_type: system or netdev")
	fs.StringVar(&c.BridgeMAC, "bridge-mac", c.BridgeMAC, "bridge other_config:hwaddr (default derived from node and bridge)")
	fs.StringVar(&c.TunnelIP, "tunnel-ip", c.TunnelIP, "this host's underlay IPv4 address")
	fs.StringVar(&c.TunnelPort, "tunnel-port", c.TunnelPort, "name of the flow-based GRE port")
	fs.IntVar(&c.TunnelOFPort, "tunnel-ofport", c.TunnelOFPort, "ofport_request of the GRE port")
	fs.StringVar(&c.ClusterFile, "cluster-file", c.ClusterFile, "static cluster view (YAML); with the etcd backend, networks read from it if it exists")
	fs.StringVar(&c.ClusterBackend, "cluster-backend", c.ClusterBackend, "where the cluster view comes from: file or etcd")
	fs.BoolVar(&c.AllRemoteFlows, "all-remote-flows", c.AllRemoteFlows, "program every remote endpoint of the cluster view, not only those of networks with a local endpoint on this host")
	fs.StringVar(&c.Etcd.Endpoints, "etcd-endpoints", c.Etcd.Endpoints, "etcd client URLs, comma-separated (etcd backend)")
	fs.StringVar(&c.Etcd.Prefix, "etcd-prefix", c.Etcd.Prefix, "etcd key prefix of the cluster view")
	fs.StringVar(&c.Etcd.CertFile, "etcd-cert", c.Etcd.CertFile, "etcd TLS client certificate file")
	fs.StringVar(&c.Etcd.KeyFile, "etcd-key", c.Etcd.KeyFile, "etcd TLS client key file")
	fs.StringVar(&c.Etcd.CAFile, "etcd-ca", c.Etcd.CAFile, "CA file for the etcd servers' certificates")
	fs.StringVar(&c.Etcd.Username, "etcd-username", c.Etcd.Username, "etcd user of this host (etcd auth; with etcd-password-file)")
	fs.StringVar(&c.Etcd.PasswordFile, "etcd-password-file", c.Etcd.PasswordFile, "file holding the etcd user's password (first line)")
	fs.DurationVar(&c.Etcd.DialTimeout, "etcd-dial-timeout", c.Etcd.DialTimeout, "etcd connect and health-probe timeout")
	fs.DurationVar(&c.Etcd.LeaseTTL, "etcd-lease-ttl", c.Etcd.LeaseTTL, "lease TTL of this host's records in etcd (at least 2s)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address for /metrics, /debug, /healthz, /readyz")
	fs.StringVar(&c.HealthListen, "health-listen", c.HealthListen, "optional second HTTP listen address serving /healthz and /readyz alone, in plain HTTP without the web config's authentication (for probes that cannot send credentials)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go's profiles at /debug/pprof/ on the listen address")
	fs.StringVar(&c.APISocket, "api-socket", c.APISocket, "unix socket of the local API (address allocation for attach and the CNI plugin; root only)")
	fs.StringVar(&c.DockerPlugin, "docker-plugin", c.DockerPlugin, "serve the Docker network and IPAM driver \"ofctl-agent\" on this unix socket (dockerd looks in /run/docker/plugins/ofctl-agent.sock); empty: none")
	fs.StringVar(&c.DockerState, "docker-state", c.DockerState, "file keeping which cluster network each Docker network is bound to (Docker does not repeat CreateNetwork)")
	fs.StringVar(&c.DockerHost, "docker-host", c.DockerHost, "the Docker Engine API (unix:///PATH or tcp://HOST:PORT), where the Docker plugin looks up its containers' names (ofctl-agent.name) after Join")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.DurationVar(&c.VerifyEvery, "verify-interval", c.VerifyEvery, "how often OVS is compared with the desired flows when it does not report flow changes")
	fs.DurationVar(&c.MonitorVerify, "monitored-verify-interval", c.MonitorVerify, "how often OVS is compared with the desired flows while it reports flow changes (safety net)")
	fs.BoolVar(&c.FlowMonitor, "flow-monitor", c.FlowMonitor, "repair the flow changes OVS reports (flow monitor) as they come; false: the periodic comparison alone")
	fs.DurationVar(&c.EchoInterval, "echo-interval", c.EchoInterval, "OpenFlow echo keepalive interval")
	fs.DurationVar(&c.DeadInterval, "dead-interval", c.DeadInterval, "silence after which the switch is declared gone")
	fs.StringVar(&c.NetNSHost, "netns-host", c.NetNSHost, "network namespace path of the host's stack where ovs-vswitchd runs (gateway ports, packet filter); default: the agent's own")
	fs.IntVar(&c.MTU, "mtu", c.MTU, "MTU of the containers' and gateways' interfaces; 0: the underlay's (interface holding tunnel-ip) minus 42")
	fs.StringVar(&c.Gateways, "gateways", c.Gateways, "this host's gateway address per network where the cluster view sets none, network=IP comma-separated (etcd mode)")
	fs.StringVar(&c.UnderlayAllow, "underlay-allow", c.UnderlayAllow, "IPv4 addresses or prefixes, comma-separated, that containers may reach among the hosts' underlay addresses (all blocked by default)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft limit of the Go runtime's memory (GOMEMLIMIT syntax: 128MiB; off: none; the GOMEMLIMIT variable wins)")
	fs.StringVar(&c.WebConfigFile, "web-config-file", c.WebConfigFile, "TLS/basic-auth web config (Prometheus exporter-toolkit format)")
	c.DNS.bind(fs)
}

func (c *Config) readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := c.MemoryLimitBytes(); err != nil {
		errs = append(errs, err)
	}
	if c.NodeName == "" {
		bad("node-name is empty")
	}
	if c.Bridge == "" || len(c.Bridge) > 15 {
		bad("bridge %q: want 1 to 15 characters", c.Bridge)
	}
	for name, addr := range map[string]string{"ovsdb": c.OVSDB, "openflow": c.OpenFlow} {
		if !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "tcp:") {
			bad("%s %q: want unix:PATH or tcp:HOST:PORT", name, addr)
		}
	}
	if c.DatapathType != "system" && c.DatapathType != "netdev" {
		bad("datapath-type %q: want system or netdev", c.DatapathType)
	}
	if c.TunnelIP != "" {
		if ip, err := netip.ParseAddr(c.TunnelIP); err != nil || !ip.Is4() {
			bad("tunnel-ip %q: want an IPv4 address", c.TunnelIP)
		}
	}
	if c.TunnelOFPort < 1 || c.TunnelOFPort > 65279 {
		bad("tunnel-ofport %d: want 1..65279", c.TunnelOFPort)
	}
	if !filepath.IsAbs(c.APISocket) {
		bad("api-socket %q: want an absolute path", c.APISocket)
	}
	if _, err := c.UnderlayAllowList(); err != nil {
		errs = append(errs, err)
	}
	if c.DockerPlugin != "" && !filepath.IsAbs(c.DockerPlugin) {
		bad("docker-plugin %q: want an absolute path", c.DockerPlugin)
	}
	if c.DockerPlugin != "" && !filepath.IsAbs(c.DockerState) {
		bad("docker-state %q: want an absolute path", c.DockerState)
	}
	if c.DockerPlugin != "" {
		if _, _, err := dockerplugin.EngineClient(c.DockerHost); err != nil {
			bad("%v", err)
		}
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		bad("mtu %d: want 0 (automatic) or 576-65535", c.MTU)
	}
	if _, err := c.GatewayMap(); err != nil {
		bad("%v", err)
	}
	if c.NetNSHost != "" && !filepath.IsAbs(c.NetNSHost) {
		bad("netns-host %q: want an absolute path", c.NetNSHost)
	}
	errs = append(errs, c.validateBackend()...)
	errs = append(errs, c.DNS.validate()...)
	if c.HealthListen != "" && c.HealthListen == c.Listen {
		bad("health-listen %q: must differ from listen", c.HealthListen)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format %q: want text or json", c.LogFormat)
	}
	if c.VerifyEvery <= 0 || c.MonitorVerify <= 0 || c.EchoInterval <= 0 || c.DeadInterval <= c.EchoInterval {
		bad("intervals: verify-interval, monitored-verify-interval and echo-interval must be > 0 and dead-interval > echo-interval")
	}
	return errors.Join(errs...)
}

func (c Config) validateBackend() []error {
	switch c.ClusterBackend {
	case "file":
		return nil
	case "etcd":
	default:
		return []error{fmt.Errorf("cluster-backend %q: want file or etcd", c.ClusterBackend)}
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Etcd.EndpointList()) == 0 {
		bad("etcd-endpoints: required with cluster-backend etcd")
	}
	if c.TunnelIP == "" {
		bad("tunnel-ip: required with cluster-backend etcd (it is published)")
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") {
		bad("etcd-prefix %q: must start with /", c.Etcd.Prefix)
	}
	if (c.Etcd.CertFile == "") != (c.Etcd.KeyFile == "") {
		bad("etcd-cert and etcd-key: give both or neither")
	}
	if (c.Etcd.Username == "") != (c.Etcd.PasswordFile == "") {
		bad("etcd-username and etcd-password-file: give both or neither (with a client certificate, etcd takes the user from its CN)")
	}
	if c.Etcd.DialTimeout <= 0 {
		bad("etcd-dial-timeout: must be > 0")
	}
	if c.Etcd.LeaseTTL < 2*time.Second {
		bad("etcd-lease-ttl %s: must be at least 2s", c.Etcd.LeaseTTL)
	}
	return errs
}
