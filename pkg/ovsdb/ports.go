package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// AddPort makes sure the bridge has a port with one interface as spec says
// (type, external_ids replaced as a whole, ofport_request). It is idempotent;
// a port of that name on another bridge is an ErrPortConflict.
func (c *Client) AddPort(ctx context.Context, spec PortSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	return c.withConn(ctx, func(cl client.Client) error {
		c.opMu.Lock()
		defer c.opMu.Unlock()
		return whenCacheCaughtUp(ctx, func() error {
			r, err := readRows(ctx, cl, spec.Name)
			if err != nil {
				return err
			}
			_, err = c.ensurePort(ctx, cl, &r, spec, nil)
			return err
		})
	})
}

// whenCacheCaughtUp runs f, which decides from the client's cache and
// writes, again while the server refuses the write with a constraint
// violation: another client (ovs-vsctl, another attach) has just created a
// row of that name that our cache does not show yet. Once the cache shows
// it, f decides right (the port is ours already, or another bridge's: an
// ErrPortConflict). If it never does, the violation is an ErrPortConflict.
func whenCacheCaughtUp(ctx context.Context, f func() error) error {
	var err error
	for range 5 {
		var cv *ovsdb.ConstraintViolation
		if err = f(); !errors.As(err, &cv) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: %w", ErrPortConflict, err)
}

// EnsureTunnelPort makes sure the bridge has the flow-based GRE port
// (type=gre, options remote_ip=flow key=flow [local_ip], the fixed
// ofport_request) and from then on puts it back when it is deleted or
// changed.
func (c *Client) EnsureTunnelPort(ctx context.Context, spec TunnelSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	want := &spec
	c.mu.Lock()
	c.tunnel, c.tunnelOK = want, false
	c.mu.Unlock()
	return c.withConn(ctx, func(cl client.Client) error {
		c.opMu.Lock()
		defer c.opMu.Unlock()
		return whenCacheCaughtUp(ctx, func() error {
			r, err := readRows(ctx, cl, spec.Name)
			if err != nil {
				return err
			}
			wrote, err := c.ensurePort(ctx, cl, &r, spec.portSpec(), spec.options())
			if err == nil {
				c.appliedTunnel(want, wrote)
			}
			return err
		})
	})
}

// DeletePort removes the port (and so its interface, which OVSDB collects
// once no port refers to it) from the bridge. A missing port is not an
// error; deleting the tunnel port stops keeping it.
func (c *Client) DeletePort(ctx context.Context, name string) error {
	if err := validName("port", name); err != nil {
		return err
	}
	if name == c.cfg.Bridge.Name {
		return fmt.Errorf("%w: %s is the bridge's local port", ErrPortConflict, name)
	}
	c.mu.Lock()
	if c.tunnel != nil && c.tunnel.Name == name {
		c.tunnel, c.tunnelOK = nil, false
	}
	c.mu.Unlock()
	return c.withConn(ctx, func(cl client.Client) error {
		c.opMu.Lock()
		defer c.opMu.Unlock()
		r, err := readRows(ctx, cl, name)
		if err != nil {
			return err
		}
		p := r.port(name)
		if p == nil {
			return nil
		}
		br := r.bridgeOf(p.UUID)
		if br == nil || br.Name != c.cfg.Bridge.Name {
			return fmt.Errorf("%w: port %s is not on bridge %s", ErrPortConflict, name, c.cfg.Bridge.Name)
		}
		ops, err := cl.Where(br).Mutate(br, model.Mutation{
			Field: &br.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID}})
		if err != nil {
			return fmt.Errorf("delete port %s: %w", name, err)
		}
		return transact(ctx, cl, ops)
	})
}

func (t TunnelSpec) portSpec() PortSpec {
	return PortSpec{Name: t.Name, Type: ifaceGRE, OFPortRequest: t.OFPort}
}

func (t TunnelSpec) options() map[string]string {
	o := map[string]string{"remote_ip": "flow", "key": "flow"}
	if t.LocalIP.IsValid() {
		o["local_ip"] = t.LocalIP.String()
	}
	return o
}

// ensurePort creates the port or fixes its interface; it reports whether it
// wrote.
func (c *Client) ensurePort(ctx context.Context, cl client.Client, r *rows, spec PortSpec, options map[string]string) (bool, error) {
	if spec.Name == c.cfg.Bridge.Name {
		return false, fmt.Errorf("%w: %s is the bridge's local port", ErrPortConflict, spec.Name)
	}
	br := r.bridge(c.cfg.Bridge.Name)
	if br == nil {
		return false, fmt.Errorf("%w: %s", ErrBridgeNotFound, c.cfg.Bridge.Name)
	}
	want := desiredIface(spec, options)
	p := r.port(spec.Name)
	if p == nil {
		if r.iface(spec.Name) != nil {
			return false, fmt.Errorf("%w: interface %s exists on another port", ErrPortConflict, spec.Name)
		}
		ops, err := createPortOps(cl, br, want)
		if err != nil {
			return false, err
		}
		c.log.Info("adding port", "port", spec.Name, "type", spec.Type)
		return true, transact(ctx, cl, ops)
	}
	if owner := r.bridgeOf(p.UUID); owner == nil || owner.UUID != br.UUID {
		return false, fmt.Errorf("%w: port %s is not on bridge %s", ErrPortConflict, spec.Name, br.Name)
	}
	iface := r.iface(spec.Name)
	if iface == nil || len(p.Interfaces) != 1 || p.Interfaces[0] != iface.UUID {
		return false, fmt.Errorf("%w: port %s does not hold exactly interface %s", ErrPortConflict, spec.Name, spec.Name)
	}
	keepStatus(want, iface)
	if ifaceMatches(iface, want) {
		return false, nil
	}
	c.log.Info("updating interface", "port", spec.Name, "type", spec.Type)
	want.UUID = iface.UUID
	cols := []any{&want.Type, &want.Options, &want.ExternalIDs, &want.OFPortRequest}
	if want.MTURequest != nil {
		cols = append(cols, &want.MTURequest)
	}
	ops, err := cl.Where(want).Update(want, cols...)
	if err != nil {
		return false, fmt.Errorf("update interface %s: %w", spec.Name, err)
	}
	return true, transact(ctx, cl, ops)
}

func desiredIface(spec PortSpec, options map[string]string) *ifaceRow {
	row := &ifaceRow{
		Name:        spec.Name,
		Type:        spec.Type,
		Options:     copyMap(options),
		ExternalIDs: copyMap(spec.ExternalIDs),
	}
	if spec.OFPortRequest != 0 {
		n := spec.OFPortRequest
		row.OFPortRequest = &n
	}
	if spec.MTURequest != 0 {
		n := spec.MTURequest
		row.MTURequest = &n
	}
	return row
}

// keepStatus carries the agent's status keys (pkg/endpoint: installed,
// error) of the row over to the wanted external_ids unless they set them:
// the keys are the agent's, not the port writer's.
func keepStatus(want, got *ifaceRow) {
	for _, k := range []string{endpoint.KeyInstalled, endpoint.KeyError} {
		if v, ok := got.ExternalIDs[k]; ok {
			if _, set := want.ExternalIDs[k]; !set {
				if want.ExternalIDs == nil {
					want.ExternalIDs = map[string]string{}
				}
				want.ExternalIDs[k] = v
			}
		}
	}
}

func ifaceMatches(got, want *ifaceRow) bool {
	return got.Type == want.Type &&
		maps.Equal(got.Options, want.Options) &&
		maps.Equal(got.ExternalIDs, want.ExternalIDs) &&
		derefInt(got.OFPortRequest) == derefInt(want.OFPortRequest) &&
		(want.MTURequest == nil || derefInt(got.MTURequest) == *want.MTURequest)
}

func createPortOps(cl client.Client, br *bridgeRow, iface *ifaceRow) ([]ovsdb.Operation, error) {
	iface.UUID = "newiface"
	port := &portRow{UUID: "newport", Name: iface.Name, Interfaces: []string{iface.UUID}}
	ops, err := cl.Create(iface, port)
	if err != nil {
		return nil, fmt.Errorf("create port %s: %w", iface.Name, err)
	}
	mut, err := cl.Where(br).Mutate(br, model.Mutation{
		Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{port.UUID}})
	if err != nil {
		return nil, fmt.Errorf("attach port %s: %w", iface.Name, err)
	}
	return append(ops, mut...), nil
}
