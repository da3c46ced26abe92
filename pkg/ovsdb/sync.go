package ovsdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/ovn-org/libovsdb/client"
)

// sync publishes the interfaces on the bridge and repairs what drifted. On
// a new connection it rereads every row; otherwise only the rows the cache
// reported changed.
func (c *Client) sync(ctx context.Context, cl client.Client) error {
	ch := c.changes.take()
	var err error
	full := ch.full || c.index == nil
	if full {
		err = c.syncFull(ctx, cl)
	} else {
		err = c.syncDelta(ctx, cl, ch)
	}
	if err != nil {
		c.changes.setFull() // the taken changes are lost: start over
		return err
	}
	c.syncedOnce.Do(func() { close(c.synced) })
	if full {
		c.monitoredOnce.Do(func() { close(c.monitored) })
	}
	return c.reconcile(ctx, cl)
}

// syncFull indexes the bridge anew from every row in the cache.
func (c *Client) syncFull(ctx context.Context, cl client.Client) error {
	r, err := readAll(ctx, cl)
	if err != nil {
		return err
	}
	c.index = newBridgeIndex(&r, c.cfg.Bridge.Name)
	c.publish(bridgeInterfaces(&r, c.cfg.Bridge.Name))
	return nil
}

// syncDelta rereads the changed rows: the bridge's port set, the changed
// ports and the interfaces they held or hold, and the changed interfaces.
func (c *Client) syncDelta(ctx context.Context, cl client.Client, ch changeSet) error {
	ports, ifaces := ch.ports, ch.ifaces
	if ch.bridges {
		var brs []bridgeRow
		if err := cl.List(ctx, &brs); err != nil {
			return fmt.Errorf("read ovsdb cache: %w", err)
		}
		r := rows{bridges: brs}
		var now []string
		if br := r.bridge(c.cfg.Bridge.Name); br != nil {
			now = br.Ports
		}
		for _, pu := range c.index.setPorts(now) {
			ports = addKey(ports, pu)
		}
	}
	for pu := range ports {
		for _, iu := range c.index.dropPort(pu) {
			ifaces = addKey(ifaces, iu)
		}
		if !c.index.onBridge(pu) {
			continue
		}
		p, err := cachedRow[portRow](cl, tablePort, pu)
		if err != nil {
			return err
		}
		if p != nil {
			c.index.setPort(p)
			for _, iu := range p.Interfaces {
				ifaces = addKey(ifaces, iu)
			}
		}
	}
	now := make(map[string]Interface, len(ifaces))
	for iu := range ifaces {
		port, ok := c.index.portOf(iu)
		if !ok {
			continue
		}
		row, err := cachedRow[ifaceRow](cl, tableIface, iu)
		if err != nil {
			return err
		}
		if row != nil {
			now[iu] = toInterface(row, port)
		}
	}
	c.publishDelta(ifaces, now, ch.since)
	return nil
}

// cachedRow returns a copy of the row of table with that UUID, nil if the
// cache does not hold it.
func cachedRow[T any](cl client.Client, table, uuid string) (*T, error) {
	tc := cl.Cache()
	if tc == nil {
		return nil, client.ErrNotConnected
	}
	rc := tc.Table(table)
	if rc == nil {
		return nil, fmt.Errorf("ovsdb cache has no table %s", table)
	}
	m := rc.Row(uuid)
	if m == nil {
		return nil, nil
	}
	row, ok := m.(*T)
	if !ok {
		return nil, fmt.Errorf("ovsdb cache: %s row %s has type %T", table, uuid, m)
	}
	return row, nil
}

// readAll copies the monitored tables out of the cache.
func readAll(ctx context.Context, cl client.Client) (rows, error) {
	var r rows
	for _, dst := range []any{&r.root, &r.bridges, &r.ports, &r.ifaces} {
		if err := cl.List(ctx, dst); err != nil {
			return rows{}, fmt.Errorf("read ovsdb cache: %w", err)
		}
	}
	return r, nil
}

// readRows copies the root and Bridge rows out of the cache and, when port
// is not "", the Port and Interface rows of that name.
func readRows(ctx context.Context, cl client.Client, port string) (rows, error) {
	var r rows
	for _, dst := range []any{&r.root, &r.bridges, &r.flowTables} {
		if err := cl.List(ctx, dst); err != nil {
			return rows{}, fmt.Errorf("read ovsdb cache: %w", err)
		}
	}
	if port == "" {
		return r, nil
	}
	p, i := &portRow{Name: port}, &ifaceRow{Name: port}
	for _, m := range []any{p, i} {
		err := cl.Get(ctx, m)
		switch {
		case errors.Is(err, client.ErrNotFound):
		case err != nil:
			return rows{}, fmt.Errorf("read ovsdb cache: %w", err)
		case m == any(p):
			r.ports = []portRow{*p}
		default:
			r.ifaces = []ifaceRow{*i}
		}
	}
	return r, nil
}
