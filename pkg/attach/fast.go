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
	// OVS is asked last, and in the background: its connection may still
	// be coming up while the address is held and the veth plumbed.
	tx, mode := &lateTx{done: make(chan struct{})}, o.TxOffload
	go func() {
		defer close(tx.done)
		tx.tx, tx.err = a.resolveTx(ctx, mode)
	}()
	defer func() { <-tx.done }()
	o, release, err := a.address(ctx, c, o)
	if err != nil {
		return Attachment{}, true, err
	}
	if err := a.checkFree(c, o, host); err != nil {
		return Attachment{}, true, release(err)
	}
	steps := a.withLateTx(a.plan(c, o, host, txAction{set: true}), c, o, tx)
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
		"network", o.Network, "tx_checksum", tx.tx.String())
	return Attachment{Port: host, ContainerID: c.ID, Options: o, Created: true, TxChecksum: tx.tx.String()}, true, nil
}

// lateTx is the TX offload decision being made in the background.
type lateTx struct {
	done chan struct{} // closed once tx or err is set
	tx   txAction
	err  error
}

// withLateTx moves the TX offload step of steps to just before the port is
// added (the last step), deciding it there from tx.
func (a *Attacher) withLateTx(steps []step, c Container, o Options, tx *lateTx) []step {
	var out []step
	for _, s := range steps {
		if s.name != stepTxOffload {
			out = append(out, s)
		}
	}
	late := step{name: stepTxOffload, do: func(ctx context.Context) error {
		select {
		case <-tx.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		switch {
		case tx.err != nil:
			return tx.err
		case !tx.tx.set:
			return nil
		}
		return a.links().SetTxChecksum(c.NetNS, o.IfName, tx.tx.on)
	}}
	return append(out[:len(out)-1:len(out)-1], late, out[len(out)-1])
}
