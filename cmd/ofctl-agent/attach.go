package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

const (
	defaultClusterFile = "/etc/ofctl-agent/cluster.yaml"
	gatewayAuto        = "auto" // --gateway: this host's gateway in the network, as the agent says
	gatewayNone        = "none" // --gateway: no default route
	attachUsageHead    = `usage: ofctl-agent attach [flags] TARGET

Plumbs a veth into a container and adds its host end to the bridge as an
endpoint port (replaces ovs-docker add-port). TARGET is a network namespace
path (/var/run/netns/NAME, /proc/PID/ns/net), or a Docker container name or
id; or give --pid instead. Flags may also follow TARGET. The address comes
from the agent (--agent-socket), the host's one allocator: without --ip the
lowest free address of this host's share of the network, with --ip that
address, held for this interface so that nothing else takes it; the agent
also gives the network's prefix length, its gateway on this host (the
default route, --gateway auto) and the MTU (unless --mtu). Attaching
again with the same settings changes nothing and succeeds (except that it
sets TX checksum offload as --tx-offload asks). Then it waits (--wait) until
the agent has installed the port's flows; if the agent refuses the port, or
does not install it in time, what this call made is undone. Without a
running agent, only --ip with --wait 0 works (the prefix length of a bare
--ip then comes from --cluster-file).
Exit status: 0 done, 1 failed, 2 bad usage.

flags:
`
)

// attachArgs are attach's parsed flags.
type attachArgs struct {
	common
	network, ip, mac, gateway string
	ifname                    string
	txOffload                 string
	mtu                       int
	wait                      time.Duration
	agentSocket               string
	clusterFile, nodeName     string // without the agent only
	clusterFileSet            bool   // --cluster-file given: the file must exist
	forceHostNS               bool   // --force-host-netns
	publish                   []endpoint.Published
	name, resolvConf          string // --name, --resolv-conf (attachdns.go)
}

// attachResult is what attach reports (--json prints it as is).
type attachResult struct {
	Action      string `json:"action"` // "attached" or "already-attached"
	Port        string `json:"port"`
	OFPort      int    `json:"ofport,omitempty"` // 0: not assigned yet
	ContainerID string `json:"container_id"`
	NetNS       string `json:"netns"`
	IfName      string `json:"ifname"`
	Network     string `json:"network"`
	IP          string `json:"ip"`
	MAC         string `json:"mac"`
	MTU         int    `json:"mtu"`
	Gateway     string `json:"gateway,omitempty"`
	TxChecksum  string `json:"tx_checksum,omitempty"` // "on"/"off" as set; absent: left alone
	Installed   bool   `json:"installed"`             // the agent has installed its flows (false: --wait 0)
	Ports       string `json:"ports,omitempty"`       // published host ports as in external_ids (tcp:8080:80,...)
	Name        string `json:"name,omitempty"`        // DNS name (external_ids ofctl-agent.name)
	ResolvConf  string `json:"resolv_conf,omitempty"` // the /etc/netns/<name>/resolv.conf written
	// PublishError: why the agent does not publish one of Ports (another
	// endpoint holds the host port); the container is attached all the same.
	PublishError string `json:"publish_error,omitempty"`
}

func runAttach(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseAttach(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(stderr, "attach", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	res, err := doAttach(ctx, a, stderr)
	if err != nil {
		return fail(stderr, "attach", err)
	}
	if a.json {
		return printJSON(stdout, stderr, res)
	}
	fmt.Fprintf(stdout, "%s %s %s: port %s ofport %s, ip %s, mac %s, mtu %d, network %s%s%s%s%s%s%s\n",
		strings.ReplaceAll(res.Action, "-", " "), res.ContainerID, res.IfName, res.Port, ofportText(res.OFPort),
		res.IP, res.MAC, res.MTU, res.Network, gatewayText(res.Gateway), portsText(res.Ports), txText(res.TxChecksum),
		prefixed(", name ", res.Name), prefixed(", resolver in ", res.ResolvConf), installedText(res.Installed))
	return 0
}

func parseAttach(args []string, stderr io.Writer) (attachArgs, error) {
	a := attachArgs{}
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	a.common.register(fs)
	fs.StringVar(&a.network, "network", "", "network `NAME` from the cluster file (required)")
	fs.StringVar(&a.ip, "ip", "", "`ADDRESS` in the network, bare (the network's prefix length is taken) or with the network's\nprefix length; the agent holds it for this interface (refused when taken or another host's);\ndefault: the agent allocates one of this host's share")
	fs.StringVar(&a.mac, "mac", "", "container `MAC`; default derived from the IP (0a:58:<ip>)")
	fs.StringVar(&a.gateway, "gateway", gatewayAuto, "default route inside the container: `IP`, none, or auto: this host's gateway in the network as\nthe agent tells it (no route when it has none, or without the agent)")
	fs.StringVar(&a.ifname, "ifname", attach.DefaultIfName, "interface `NAME` inside the container")
	fs.IntVar(&a.mtu, "mtu", 0, "MTU of both veth ends; default: the agent's container MTU (1450 without the agent)")
	fs.StringVar(&a.agentSocket, "agent-socket", agentapi.DefaultSocket, "`PATH` of the agent's local API socket (its api-socket)")
	fs.StringVar(&a.txOffload, "tx-offload", string(attach.TxOffloadAuto),
		"TX checksum offload of the container interface: `MODE` on, off, or auto: off when the bridge's\ndatapath_type is netdev (TCP through the userspace datapath needs it), left alone otherwise")
	fs.StringVar(&a.clusterFile, "cluster-file", defaultClusterFile, "without the agent (--ip, --wait 0): `PATH` of the cluster view, for the prefix length of a bare --ip\nand the host ranges; may be absent unless given")
	fs.StringVar(&a.nodeName, "node-name", hostname(), "without the agent: this host's `NAME` in the cluster file (its range)")
	fs.DurationVar(&a.wait, "wait", 10*time.Second,
		"wait this long for the agent to install the port's flows (its external_ids:ofctl-agent.installed); 0: do not wait")
	fs.Func("publish", "publish host port `HOSTPORT:PORT[/PROTO]` of the host's addresses to the container's PORT (proto tcp\nor udp, default tcp); repeatable; the agent refuses a host port another endpoint holds", func(v string) error {
		p, err := parsePublish(v)
		if err == nil {
			a.publish = append(a.publish, p)
		}
		return err
	})
	fs.StringVar(&a.name, "name", nameAuto, "DNS `NAME` of the container in the network (one DNS label; ofctl-agent.name): auto: the Docker\ncontainer's name or the network namespace's (none when it is not a DNS label); none: no name")
	fs.StringVar(&a.resolvConf, "resolv-conf", resolvAuto, "`MODE` auto: for a named network namespace (/var/run/netns/NAME), write /etc/netns/NAME/resolv.conf\nwith the agent's resolver on the gateway (nameserver, search <network>.<domain>) when it serves one; none: do not")
	fs.BoolVar(&a.forceHostNS, "force-host-netns", false,
		"attach even when TARGET's network namespace is the host's (PID 1's), attach's own or --netns-host's\n(a container run with --network host or --pid 1): that gives the host itself the interface, address and route")
	pos, err := parseArgs(fs, args, stderr, attachUsageHead)
	if err != nil {
		return a, err
	}
	if a.target, err = newTarget(a.pid, pos); err != nil {
		return a, err
	}
	fs.Visit(func(f *flag.Flag) { a.clusterFileSet = a.clusterFileSet || f.Name == "cluster-file" })
	if a.network == "" {
		return a, usageErrorf("--network is required")
	}
	if a.resolvConf != resolvAuto && a.resolvConf != resolvNone {
		return a, usageErrorf("--resolv-conf %q: want auto or none", a.resolvConf)
	}
	if a.name != nameAuto && a.name != nameNone {
		if err := endpoint.ValidateName(a.name); err != nil {
			return a, usageErrorf("--name %q: %v", a.name, err)
		}
	}
	return a, nil
}

func doAttach(ctx context.Context, a attachArgs, stderr io.Writer) (attachResult, error) {
	warn := func(msg string) { fmt.Fprintf(stderr, "ofctl-agent attach: warning: %s\n", msg) }
	opts, alloc, dns, err := a.prepare(ctx, warn)
	if err != nil {
		return attachResult{}, err
	}
	hostNS, err := a.openHostNS()
	if err != nil {
		return attachResult{}, err
	}
	defer hostNS.Close()
	ctr, err := a.target.resolveAttach(ctx)
	if err != nil {
		return attachResult{}, err
	}
	defer ctr.Close()
	if opts.Name, err = a.dnsName(ctr, warn); err != nil {
		return attachResult{}, err
	}
	ports, closePorts, err := a.openPorts(ctx, stderr)
	if err != nil {
		return attachResult{}, err
	}
	defer closePorts()
	at := &attach.Attacher{Ports: ports, Alloc: alloc, HostNS: hostNS, AllowHostNetNS: a.forceHostNS, Log: a.logger(stderr)}
	res, err := at.Attach(ctx, ctr, opts)
	if err != nil {
		return attachResult{}, err
	}
	out := newAttachResult(res, ctr)
	out.OFPort, err = waitOFPort(ctx, ports, res.Port)
	if errors.Is(err, attach.ErrPortUnusable) {
		return out, undo(ctx, at, res, fmt.Errorf("%w (wrong --netns-host?)", err))
	} else if err != nil {
		fmt.Fprintf(stderr, "ofctl-agent attach: warning: %v\n", oneLine(err))
	}
	if a.wait > 0 {
		if err := a.waitInstalled(ctx, ports, res); err != nil {
			return out, undo(ctx, at, res, err)
		}
		out.Installed = true
		if len(res.Options.Ports) > 0 {
			out.PublishError = publishError(ctx, ports, res.Port)
			if out.PublishError != "" {
				fmt.Fprintf(stderr, "ofctl-agent attach: warning: the agent does not publish a port of %s: %s (the container is attached and reachable)\n", res.Port, out.PublishError)
			}
		}
	}
	if out.ResolvConf, err = a.writeResolvConf(dns, warn); err != nil {
		return out, undo(ctx, at, res, err)
	}
	return out, nil
}

// publishError reads why the agent does not publish a port of the endpoint
// (its external_ids ofctl-agent.publish-error, written with the installed
// mark), "" when it publishes them all or the row cannot be read.
func publishError(ctx context.Context, ports *attach.OVSPorts, port string) string {
	list, err := ports.Ports(ctx)
	if err != nil {
		return ""
	}
	for _, p := range list {
		if p.Name == port {
			return p.ExternalIDs[endpoint.KeyPublishError]
		}
	}
	return ""
}

// waitInstalled waits up to --wait for the agent to install the port.
func (a attachArgs) waitInstalled(ctx context.Context, ports *attach.OVSPorts, res attach.Attachment) error {
	ctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	start, ip := time.Now(), res.Options.IP.Addr()
	err := ports.WaitInstalled(ctx, res.Port, ip)
	var refused *ovsdb.RefusedError
	switch {
	case err == nil, errors.As(err, &refused):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("port %s: the agent did not install its flows within %v: is ofctl-agent running, on bridge %s of this OVSDB? "+
			"(its log and 'ofctl-agent dump-flows --endpoint %s' say why; --wait 0 does not wait)", res.Port, time.Since(start).Round(time.Second), a.bridge, ip)
	}
	return fmt.Errorf("port %s: waiting for the agent: %w", res.Port, err)
}

// undo removes what this call created after err, and gives its address
// back to the agent; it returns err with what was done. An attachment that
// existed before is left as it was.
func undo(ctx context.Context, at *attach.Attacher, res attach.Attachment, err error) error {
	if !res.Created {
		return fmt.Errorf("%w (attached before this call: left as it is; detach to remove it)", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if derr := at.Detach(ctx, res.ContainerID, res.Options.IfName); derr != nil {
		return fmt.Errorf("%w; rollback failed: %v (run detach)", err, derr)
	}
	if rerr := at.Release(ctx, res); rerr != nil { // removing the port freed it anyway, once the agent sees it
		return fmt.Errorf("%w; rolled back (giving the address back to the agent failed: %v)", err, rerr)
	}
	return fmt.Errorf("%w; rolled back", err)
}

// prepare builds the options from the flags and what the agent says of
// the network, with the agent as the allocator. Without an agent it takes
// the cluster file instead (offline: only with --ip and --wait 0, nothing
// holds the address then). warn gets what the user should know but does
// not stop the attach.
func (a attachArgs) prepare(ctx context.Context, warn func(string)) (attach.Options, attach.Allocator, *agentapi.DNS, error) {
	client := agentapi.NewClient(a.agentSocket)
	n, err := client.Network(ctx, a.network)
	switch {
	case err == nil:
		o, err := a.agentOptions(n)
		return o, &attach.AgentAllocator{Client: client, Kind: "attach"}, n.DNS, err
	case errors.Is(err, agentapi.ErrUnreachable) && a.ip != "" && a.wait == 0:
		view, err := loadCluster(a.clusterFile, a.clusterFileSet)
		if err != nil {
			return attach.Options{}, nil, nil, err
		}
		o, err := a.options(view, warn)
		return o, nil, nil, err
	case errors.Is(err, agentapi.ErrUnreachable):
		return attach.Options{}, nil, nil, fmt.Errorf("the agent is not reachable on %s: is the agent running? (systemctl status ofctl-agent; "+
			"--agent-socket is its api-socket): it allocates the address and installs the port; give --ip and --wait 0 to attach without it", a.agentSocket)
	}
	return attach.Options{}, nil, nil, fmt.Errorf("network %s: %w", a.network, err)
}

// baseOptions are the options the flags alone give.
func (a attachArgs) baseOptions() (attach.Options, error) {
	o := attach.Options{Network: a.network, IfName: a.ifname, MTU: a.mtu, Ports: a.publish}
	if _, err := endpoint.ParsePorts(endpoint.FormatPorts(a.publish)); err != nil {
		return o, usageErrorf("--publish: %v", err)
	}
	var err error
	if o.TxOffload, err = attach.ParseTxOffload(a.txOffload); err != nil {
		return o, usageErrorf("--tx-offload %q: want auto, on or off", a.txOffload)
	}
	if a.mac != "" {
		if o.MAC, err = net.ParseMAC(a.mac); err != nil {
			return o, usageErrorf("--mac %q: %v", a.mac, err)
		}
	}
	switch a.gateway {
	case gatewayAuto, gatewayNone, "":
	default:
		if o.Gateway, err = netip.ParseAddr(a.gateway); err != nil {
			return o, usageErrorf("--gateway %q: want an IP address, auto or none", a.gateway)
		}
	}
	if a.mtu < 0 {
		return o, usageErrorf("--mtu %d: want a positive MTU", a.mtu)
	}
	return o, nil
}

// agentOptions completes the options with what the agent says of the
// network: its subnet (the prefix length), this host's gateway in it
// (--gateway auto) and the MTU (no --mtu).
func (a attachArgs) agentOptions(n agentapi.Network) (attach.Options, error) {
	o, err := a.baseOptions()
	if err != nil {
		return o, err
	}
	o.Subnet = n.Subnet
	if a.gateway == gatewayAuto || a.gateway == "" {
		o.Gateway = n.Gateway
	}
	if o.MTU == 0 {
		o.MTU = n.MTU
	}
	if a.ip == "" {
		return o, nil
	}
	if o.IP, err = parseIP(a.ip, o.Subnet); err != nil {
		return o, err
	}
	return o, a.checkSubnet(o)
}

// options turns the flags and the cluster view (nil: no file) into the
// attach options, without the agent: --ip is required.
func (a attachArgs) options(view *cluster.View, warn func(string)) (attach.Options, error) {
	o, err := a.baseOptions()
	if err != nil {
		return o, err
	}
	if view != nil {
		n, ok := view.Network(a.network)
		if !ok {
			return o, usageErrorf("network %q is not in the cluster file %s", a.network, a.clusterFile)
		}
		o.Subnet = n.Subnet
	}
	if a.ip == "" {
		return o, usageErrorf("--ip is required without the agent")
	}
	if o.IP, err = parseIP(a.ip, o.Subnet); err != nil {
		return o, err
	}
	if view == nil {
		return o, nil
	}
	if err := a.checkSubnet(o); err != nil {
		return o, err
	}
	return o, a.checkRanges(view, o, warn)
}

// checkSubnet holds --ip to the network's subnet, with its prefix length
// (the container's route must cover the whole network, or it cannot reach
// the network's addresses on other hosts).
func (a attachArgs) checkSubnet(o attach.Options) error {
	ip := o.IP.Addr()
	switch {
	case !o.Subnet.Contains(ip):
		return usageErrorf("--ip %s is outside network %s (%s)", o.IP, a.network, o.Subnet)
	case o.IP.Bits() != o.Subnet.Bits():
		return usageErrorf("--ip %s: network %s is %s, so the prefix length is /%d (a /%d route would not reach all of %s); give %s or %s",
			o.IP, a.network, o.Subnet, o.Subnet.Bits(), o.IP.Bits(), a.network, ip, netip.PrefixFrom(ip, o.Subnet.Bits()))
	}
	return nil
}

// checkRanges holds --ip to the cluster file's ranges without the agent
// (which applies the same rule): not in another host's range
// (cluster.RangeIndex: the other hosts send those addresses to that host).
func (a attachArgs) checkRanges(view *cluster.View, o attach.Options, warn func(string)) error {
	ip := o.IP.Addr()
	ranges := cluster.NewRangeIndex(view.Hosts)
	holder, r, held := ranges.Holder(a.network, ip)
	switch {
	case held && holder != a.nodeName:
		return usageErrorf("--ip %s is inside host %s's range %s of network %s: that host hands out its addresses and the others send them there (this host is %q: --node-name)",
			ip, holder, r, a.network, a.nodeName)
	case !held && slices.ContainsFunc(view.Hosts, func(h cluster.Host) bool { _, ok := h.Ranges[a.network]; return ok }):
		warn(fmt.Sprintf("%s is in no host's range of network %s: other hosts will not reach it (static cluster view)", ip, a.network))
	}
	return nil
}

// parseIP reads --ip: a CIDR, or a bare address that takes the subnet's
// prefix length.
func parseIP(s string, subnet netip.Prefix) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return p, usageErrorf("--ip %q: want an IPv4 address with prefix length, e.g. 10.100.1.5/24", s)
		}
		return p, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Prefix{}, usageErrorf("--ip %q: not an IPv4 address", s)
	}
	if !subnet.IsValid() {
		return netip.Prefix{}, usageErrorf("--ip %s: give a prefix length (no cluster file to take the subnet from)", s)
	}
	return netip.PrefixFrom(ip, subnet.Bits()), nil
}

// loadCluster reads the cluster file; a missing file is no view (nil)
// unless the path was given explicitly.
func loadCluster(path string, explicit bool) (*cluster.View, error) {
	v, err := cluster.LoadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func newAttachResult(res attach.Attachment, ctr attach.Container) attachResult {
	r := attachResult{
		Action: "attached", Port: res.Port, ContainerID: ctr.ID, NetNS: ctr.NetNS.Path(),
		IfName: res.Options.IfName, Network: res.Options.Network, IP: res.Options.IP.String(),
		MAC: res.Options.MAC.String(), MTU: res.Options.MTU,
	}
	if !res.Created {
		r.Action = "already-attached"
	}
	if res.Options.Gateway.IsValid() {
		r.Gateway = res.Options.Gateway.String()
	}
	r.TxChecksum = res.TxChecksum
	r.Ports = endpoint.FormatPorts(res.Options.Ports)
	r.Name = res.Options.Name
	return r
}

// prefixed is s after prefix, or "" for an empty s.
func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// parsePublish reads one --publish: HOSTPORT:PORT with an optional /tcp or
// /udp (Docker's -p syntax without an address).
func parsePublish(v string) (endpoint.Published, error) {
	mapping, proto, hasProto := strings.Cut(v, "/")
	if !hasProto {
		proto = string(endpoint.TCP)
	}
	host, ctr, ok := strings.Cut(mapping, ":")
	if !ok || strings.Contains(ctr, ":") {
		return endpoint.Published{}, fmt.Errorf("%q: want HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80/tcp (no address: every address of the host)", v)
	}
	ports, err := endpoint.ParsePorts(proto + ":" + host + ":" + ctr)
	if err != nil {
		return endpoint.Published{}, fmt.Errorf("%q: %w", v, err)
	}
	return ports[0], nil
}

func portsText(ports string) string {
	if ports == "" {
		return ""
	}
	return ", publishes " + ports
}

// waitOFPort waits a few seconds at most for ovs-vswitchd to number the port.
func waitOFPort(ctx context.Context, p *attach.OVSPorts, port string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.OFPort(ctx, port)
}

func ofportText(n int) string {
	if n == 0 {
		return "pending"
	}
	return fmt.Sprint(n)
}

func installedText(installed bool) string {
	if !installed {
		return ""
	}
	return ", installed"
}

func gatewayText(gw string) string {
	if gw == "" {
		return ""
	}
	return ", gateway " + gw
}

func txText(tx string) string {
	if tx == "" {
		return ""
	}
	return ", tx checksum " + tx
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func printJSON(stdout, stderr io.Writer, v any) int {
	if err := json.NewEncoder(stdout).Encode(v); err != nil {
		return fail(stderr, "output", err)
	}
	return 0
}
