package attach

import (
	"context"
	"errors"
	"fmt"
)

// PortInserter is Ports that can add a port without reading the bridge
// first, in one step that the OVS side refuses when the name is taken (the
// CNI plugin's, over ovsdb.Direct: reading a bridge of 1,000 ports costs
// more than plumbing the veth). With it Attach plumbs a new interface
// first and reads the bridge only when something may be attached already.
type PortInserter interface {
	// InsertPort is AddPort that fails with ErrPortExists (wrapped), and
	// changes nothing, when a port or interface of that name exists.
	InsertPort(ctx context.Context, name string, externalIDs map[string]string) error
}

// ErrPortExists is InsertPort's answer for a name that is taken.
var ErrPortExists = errors.New("a port of that name exists")

// attachNew is Attach for an interface that is not attached yet, without
// reading the bridge: the kernel side is checked and plumbed first, then
// the port is inserted. It returns done false, having undone its own steps,
// when the bridge must decide: the host end exists already (attached
// before, or left over), or the port's name is taken. Only the allocator
// keeps addresses apart here (the agent's knows every port's address),
// not a scan of the bridge.
func (a *Attacher) attachNew(ctx context.Context, pi PortInserter, c Container, o Options, host string) (_ Attachment, done bool, _ error) {
	if _, err := a.links().Inspect(a.HostNS, host); !errors.Is(err, ErrLinkNotFound) {
		return Attachment{}, false, nil // there, or unknown: the bridge decides
	}
	o, release, err := a.address(ctx, c, o)
	if err != nil {
		return Attachment{}, true, err
	}
	if err := a.checkFree(c, o, host); err != nil {
		return Attachment{}, true, release(err)
	}
	tx, err := a.resolveTx(ctx, o.TxOffload) // OVS last: its connection may still be coming up
	if err != nil {
		return Attachment{}, true, release(err)
	}
	steps := a.plan(c, o, host, tx)
	add := &steps[len(steps)-1] // add OVS port
	taken := false
	add.do = func(ctx context.Context) error {
		err := pi.InsertPort(ctx, host, externalIDs(a.owner(), c, o))
		taken = errors.Is(err, ErrPortExists)
		return err
	}
	remove := add.undo
	add.undo = func(ctx context.Context) error {
		if taken { // not ours: never remove it
			return nil
		}
		return remove(ctx)
	}
	err = a.run(ctx, steps)
	var se *StepError
	if taken && errors.As(err, &se) && se.Rollback == nil {
		_ = release(err) // what the port holds, the port claims itself
		a.log().Debug("port name taken: reading the bridge", "port", host)
		return Attachment{}, false, nil
	}
	if err != nil {
		return Attachment{}, true, release(fmt.Errorf("attach %s of %s: %w", o.IfName, c.ID, err))
	}
	o.MAC = o.mac()
	a.log().Info("attached", "port", host, "container", c.ID, "ifname", o.IfName, "ip", o.IP, "mac", o.MAC,
		"network", o.Network, "tx_checksum", tx.String())
	return Attachment{Port: host, ContainerID: c.ID, Options: o, Created: true, TxChecksum: tx.String()}, true, nil
}
