package ovsdb

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config configures a Client.
type Config struct {
	// Endpoint is the OVSDB server, "unix:/path/db.sock" or "tcp:host:port".
	Endpoint string
	// Bridge is the integration bridge this client keeps and reports on.
	Bridge BridgeConfig
	// NodeName seeds the derived bridge MAC when Bridge.HWAddr is empty.
	NodeName string
	// ConnectTimeout bounds one connection attempt (connect + monitor).
	// Default 5s.
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed connection
	// attempts (doubling from Min to Max). Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often a connection is checked with an OVSDB echo
	// (default 5s; negative disables the probe); a server that does not
	// answer within ProbeTimeout (default 5s) is dropped.
	ProbeInterval, ProbeTimeout time.Duration
	// RepairRetry is the wait before retrying a failed repair. Default 1s.
	RepairRetry time.Duration
	// Logger receives this package's and libovsdb's logs. Default slog.Default().
	Logger *slog.Logger
	// OnlyPorts, when set, limits the client's view to the ports and
	// interfaces of these names (and the bridge's own): a short-lived
	// client that handles one port (the CNI plugin) need not read every
	// row of a large bridge. Interfaces then lists only them. The agent
	// leaves it empty.
	OnlyPorts []string
}

// BridgeConfig is the desired integration bridge.
type BridgeConfig struct {
	// Name of the bridge. Default "br-int".
	Name string
	// DatapathType is "netdev" (userspace) or "system". Default "system".
	DatapathType string
	// HWAddr fixes the bridge MAC (other_config:hwaddr) so the datapath ID
	// stays stable. Default DeriveHWAddr(NodeName, Name).
	HWAddr net.HardwareAddr
	// TableNames names OpenFlow tables (ID -> name) in the bridge's
	// flow_tables (Flow_Table rows), so that `ovs-ofctl --names` prints
	// them; kept like the other columns. Tables not listed are left alone.
	TableNames map[int]string
}

// PortSpec is an ordinary port with one interface of the same name.
type PortSpec struct {
	Name string
	// Type is the interface type: "" (a netdev such as a veth) or "internal".
	Type string
	// ExternalIDs become the interface's external_ids (replacing them).
	ExternalIDs map[string]string
	// OFPortRequest asks vswitchd for this OpenFlow port number; 0 for any.
	OFPortRequest int
	// MTURequest sets the interface's mtu_request (how ovs-vswitchd sets
	// an internal port's MTU; it resets one set otherwise); 0: leave it.
	MTURequest int
}

// TunnelSpec is the flow-based GRE port: options remote_ip=flow, key=flow.
type TunnelSpec struct {
	Name string
	// OFPort is the fixed ofport_request (1..65279).
	OFPort int
	// LocalIP, when valid, becomes options:local_ip.
	LocalIP netip.Addr
}

func (c Config) withDefaults() Config {
	if c.Bridge.Name == "" {
		c.Bridge.Name = "br-int"
	}
	if c.Bridge.DatapathType == "" {
		c.Bridge.DatapathType = "system"
	}
	if c.Bridge.HWAddr == nil {
		c.Bridge.HWAddr = DeriveHWAddr(c.NodeName, c.Bridge.Name)
	}
	c.ConnectTimeout = orDefault(c.ConnectTimeout, 5*time.Second)
	c.MinBackoff = orDefault(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = orDefault(c.MaxBackoff, 5*time.Second)
	c.ProbeInterval = orDefault(c.ProbeInterval, 5*time.Second)
	c.ProbeTimeout = orDefault(c.ProbeTimeout, 5*time.Second)
	c.RepairRetry = orDefault(c.RepairRetry, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (c Config) validate() error {
	switch {
	case !strings.HasPrefix(c.Endpoint, "unix:") && !strings.HasPrefix(c.Endpoint, "tcp:"):
		return fmt.Errorf("%w: endpoint %q: want unix:PATH or tcp:HOST:PORT", ErrInvalidConfig, c.Endpoint)
	case len(c.Bridge.HWAddr) != 6:
		return fmt.Errorf("%w: bridge hwaddr %q is not an Ethernet address", ErrInvalidConfig, c.Bridge.HWAddr)
	case c.Bridge.HWAddr[0]&1 == 1:
		return fmt.Errorf("%w: bridge hwaddr %s is a multicast address", ErrInvalidConfig, c.Bridge.HWAddr)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("%w: backoff %v..%v", ErrInvalidConfig, c.MinBackoff, c.MaxBackoff)
	}
	return validName("bridge", c.Bridge.Name)
}

// validName checks a bridge, port or interface name as OVS and Linux take it.
func validName(what, name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("%w: %s name %q: want 1-15 characters, no '/' or spaces", ErrInvalidConfig, what, name)
	}
	return nil
}

func (p PortSpec) validate() error {
	if err := validName("port", p.Name); err != nil {
		return err
	}
	if p.Type != "" && p.Type != ifaceInternal {
		return fmt.Errorf("%w: port %s: type %q: want \"\" or %q", ErrInvalidConfig, p.Name, p.Type, ifaceInternal)
	}
	return validOFPort(p.Name, p.OFPortRequest, true)
}

func (t TunnelSpec) validate() error {
	if err := validName("tunnel port", t.Name); err != nil {
		return err
	}
	if t.LocalIP.IsValid() && !t.LocalIP.Is4() {
		return fmt.Errorf("%w: tunnel %s: local_ip %s is not IPv4", ErrInvalidConfig, t.Name, t.LocalIP)
	}
	return validOFPort(t.Name, t.OFPort, false)
}

func validOFPort(name string, n int, zeroOK bool) error {
	if (n == 0 && zeroOK) || (n >= 1 && n <= 65279) {
		return nil
	}
	return fmt.Errorf("%w: port %s: ofport_request %d outside 1..65279", ErrInvalidConfig, name, n)
}

// DeriveHWAddr returns a stable, locally administered unicast MAC for a
// bridge on a node: the first six bytes of SHA-256("node/bridge") with the
// local bit set and the multicast bit cleared.
func DeriveHWAddr(node, bridge string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(node + "/" + bridge))
	mac := net.HardwareAddr(sum[:6:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// backoffDelay is the wait before connection attempt n+1 after n consecutive
// failures (n >= 1): min doubled n-1 times, capped at max.
func backoffDelay(n int, minD, maxD time.Duration) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}
