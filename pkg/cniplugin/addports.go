package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// addPorts is ADD's side of OVS. A lean connection (ovsdb.Direct), dialled
// while the agent is asked for the network and the address, reads the
// datapath type, inserts the port (attach.PortInserter: the server refuses
// a taken name) and follows the port's row for the installed mark. The
// plugin's view of its port (Plugin.open: a pkg/ovsdb Client) is opened
// only when attach must read the bridge (the interface may be attached
// already) or take a port apart. Reading the bridge first cost ~15 ms of an
// ADD at 1,000 endpoints, plumbing the veth ~3.
type addPorts struct {
	dialled chan struct{} // closed once d or dialErr is set
	d       *ovsdb.Direct
	dialErr error
	stop    context.CancelFunc // ends a dial still going (close)

	open      func(context.Context) (Ports, func(), error)
	mu        sync.Mutex
	view      Ports
	closeView func()
}

var (
	_ Ports               = (*addPorts)(nil)
	_ attach.PortInserter = (*addPorts)(nil)
)

// dialAdd starts dialling the conflist's OVSDB for port's row and returns
// at once.
func (p *Plugin) dialAdd(ctx context.Context, c *NetConf, port string) *addPorts {
	dctx, stop := context.WithCancel(ctx)
	a := &addPorts{dialled: make(chan struct{}), stop: stop,
		open: func(ctx context.Context) (Ports, func(), error) { return p.open(ctx, c, port) }}
	go func() {
		defer close(a.dialled)
		a.d, a.dialErr = ovsdb.Dial(dctx, c.OVSDB, c.Bridge, port)
	}()
	return a
}

// direct waits for the dial.
func (a *addPorts) direct(ctx context.Context) (*ovsdb.Direct, error) {
	select {
	case <-a.dialled:
		return a.d, a.dialErr
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ovsdb.ErrNotConnected, ctx.Err())
	}
}

// dialFailed is the dial's error once it is known, else nil.
func (a *addPorts) dialFailed() error {
	select {
	case <-a.dialled:
		return a.dialErr
	default:
		return nil
	}
}

// full returns the view of the port, opening it on first use.
func (a *addPorts) full(ctx context.Context) (Ports, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.view == nil {
		v, closeView, err := a.open(ctx)
		if err != nil {
			return nil, err
		}
		a.view, a.closeView = v, closeView
	}
	return a.view, nil
}

// close ends both connections (and a dial still going: an ADD that failed
// before it needed OVS returns without waiting for a slow server).
func (a *addPorts) close() {
	a.stop()
	<-a.dialled
	if a.d != nil {
		a.d.Close()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closeView != nil {
		a.closeView()
	}
}

// InsertPort implements attach.PortInserter.
func (a *addPorts) InsertPort(ctx context.Context, name string, externalIDs map[string]string) error {
	d, err := a.direct(ctx)
	if err != nil {
		return err
	}
	err = d.InsertPort(ctx, ovsdb.PortSpec{Name: name, ExternalIDs: externalIDs})
	if errors.Is(err, ovsdb.ErrPortExists) {
		return fmt.Errorf("%w: %w", attach.ErrPortExists, err)
	}
	return err
}

// DatapathType implements attach.Ports.
func (a *addPorts) DatapathType(ctx context.Context) (string, error) {
	d, err := a.direct(ctx)
	if err != nil {
		return "", err
	}
	return d.DatapathType(ctx)
}

// DeletePort implements attach.Ports (a rollback).
func (a *addPorts) DeletePort(ctx context.Context, name string) error {
	d, err := a.direct(ctx)
	if err != nil {
		return err
	}
	return d.DeletePort(ctx, name)
}

// AddPort implements attach.Ports through the view (attach's path for an
// interface that may be attached already).
func (a *addPorts) AddPort(ctx context.Context, name string, externalIDs map[string]string) error {
	v, err := a.full(ctx)
	if err != nil {
		return err
	}
	return v.AddPort(ctx, name, externalIDs)
}

// Ports implements attach.Ports through the view.
func (a *addPorts) Ports(ctx context.Context) ([]attach.Port, error) {
	v, err := a.full(ctx)
	if err != nil {
		return nil, err
	}
	return v.Ports(ctx)
}

// WaitInstalled implements Ports on the lean connection.
func (a *addPorts) WaitInstalled(ctx context.Context, port string, ip netip.Addr) error {
	d, err := a.direct(ctx)
	if err != nil {
		return err
	}
	return d.WaitInstalled(ctx, port, ip)
}
