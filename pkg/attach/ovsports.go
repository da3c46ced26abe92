package attach

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// ovsdbClient is the part of *ovsdb.Client that OVSPorts uses.
type ovsdbClient interface {
	AddPort(ctx context.Context, spec ovsdb.PortSpec) error
	DeletePort(ctx context.Context, name string) error
	Interfaces() []ovsdb.Interface
	Stats() ovsdb.Stats
	DatapathType(ctx context.Context) (string, error)
	WaitInstalled(ctx context.Context, iface string, ip netip.Addr) error
}

// OVSPorts implements Ports over a pkg/ovsdb Client (whose Run is going) on
// the client's bridge.
type OVSPorts struct {
	Client ovsdbClient
	Bridge string // the client's bridge: its local interface marks a synced view
	// Poll is how often Ready and OFPort look at the client's view; 0: 20ms.
	Poll time.Duration
}

// NewOVSPorts returns Ports over c for the bridge c was configured with.
func NewOVSPorts(c *ovsdb.Client) *OVSPorts {
	return &OVSPorts{Client: c, Bridge: c.Config().Bridge.Name}
}

// AddPort implements Ports.
func (o *OVSPorts) AddPort(ctx context.Context, name string, externalIDs map[string]string) error {
	return o.Client.AddPort(ctx, ovsdb.PortSpec{Name: name, ExternalIDs: externalIDs})
}

// DeletePort implements Ports.
func (o *OVSPorts) DeletePort(ctx context.Context, name string) error {
	return o.Client.DeletePort(ctx, name)
}

// Ports implements Ports from the client's view of the bridge; call Ready
// first so that the view is filled in.
func (o *OVSPorts) Ports(context.Context) ([]Port, error) {
	var ports []Port
	seen := map[string]bool{}
	for _, i := range o.Client.Interfaces() {
		if seen[i.Port] { // a bond: one port, several interfaces
			continue
		}
		seen[i.Port] = true
		ports = append(ports, Port{Name: i.Port, ExternalIDs: i.ExternalIDs})
	}
	return ports, nil
}

// DatapathType implements Ports: the bridge's datapath_type as the server
// holds it.
func (o *OVSPorts) DatapathType(ctx context.Context) (string, error) {
	return o.Client.DatapathType(ctx)
}

// Ready waits until the client is connected and its view holds the bridge
// (seen by the bridge's local interface). A bridge still missing grace after
// the connection is reported as ovsdb.ErrBridgeNotFound.
func (o *OVSPorts) Ready(ctx context.Context, grace time.Duration) error {
	var connectedAt time.Time
	return o.poll(ctx, func() (bool, error) {
		if !o.Client.Stats().Connected {
			connectedAt = time.Time{}
			return false, nil
		}
		if connectedAt.IsZero() {
			connectedAt = time.Now()
		}
		for _, i := range o.Client.Interfaces() {
			if i.Name == o.Bridge && i.Port == o.Bridge {
				return true, nil
			}
		}
		if time.Since(connectedAt) > grace {
			return false, fmt.Errorf("%w: %s (connected, but no such bridge in the database)", ovsdb.ErrBridgeNotFound, o.Bridge)
		}
		return false, nil
	}, func(err error) error {
		st := o.Client.Stats()
		switch {
		case st.Connected:
			return fmt.Errorf("%w: %s not seen in the database: %w", ovsdb.ErrBridgeNotFound, o.Bridge, err)
		case st.LastError != nil:
			return fmt.Errorf("%w: %w (last error: %v)", ovsdb.ErrNotConnected, err, st.LastError)
		}
		return fmt.Errorf("%w: %w", ovsdb.ErrNotConnected, err)
	})
}

// ErrPortUnusable means ovs-vswitchd could not open a port (ofport -1).
var ErrPortUnusable = errors.New("ovs-vswitchd could not open the port")

// OFPort waits until ovs-vswitchd has assigned the port's OpenFlow number
// and returns it. It returns ErrPortUnusable (wrapped, with the interface's
// error column) for ofport -1, and ctx's error when it ends first.
func (o *OVSPorts) OFPort(ctx context.Context, port string) (int, error) {
	var ofport int
	err := o.poll(ctx, func() (bool, error) {
		for _, i := range o.Client.Interfaces() {
			if i.Name != port {
				continue
			}
			switch {
			case i.OFPort > 0:
				ofport = i.OFPort
				return true, nil
			case i.OFPort < 0:
				return false, fmt.Errorf("port %s: %w: %s", port, ErrPortUnusable, i.Error)
			}
		}
		return false, nil
	}, func(err error) error { return fmt.Errorf("port %s: no ofport assigned yet: %w", port, err) })
	return ofport, err
}

// WaitInstalled waits until the agent has installed the flows of the
// endpoint on port for ip (see ovsdb.Client.WaitInstalled): an
// *ovsdb.RefusedError when the agent says why it does not.
func (o *OVSPorts) WaitInstalled(ctx context.Context, port string, ip netip.Addr) error {
	return o.Client.WaitInstalled(ctx, port, ip)
}

// poll calls cond until it is done or fails; when ctx ends first it returns
// onDone(ctx.Err()).
func (o *OVSPorts) poll(ctx context.Context, cond func() (bool, error), onDone func(error) error) error {
	every := o.Poll
	if every <= 0 {
		every = 20 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return onDone(ctx.Err())
		case <-t.C:
		}
	}
}
