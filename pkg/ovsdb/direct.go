package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// ErrPortExists: InsertPort found a port or an interface of that name in the
// database (on any bridge): the server refused the new rows.
var ErrPortExists = errors.New("a port or interface of that name exists")

// Direct is one short-lived OVSDB connection for a command that adds one
// port and waits for the agent to program it, as fast as the server allows
// (the CNI plugin's ADD). Unlike a Client it keeps no copy of the bridge: a
// Client's first read brings every port of the bridge (~10 ms at 1,000
// ports on these machines), while Direct adds the port in one transaction
// that the server itself refuses when the name is taken, and follows that
// one Interface row (a conditional monitor on its name). Its methods are
// safe for concurrent use; Close it when done.
type Direct struct {
	cl     client.Client
	bridge string
	watch  string // the interface WaitInstalled can wait for

	monitored chan struct{} // closed once the monitor is set up, or failed (monErr)
	monErr    error
	dpRead    chan struct{} // closed once dp or dpErr is set
	dp        string
	dpErr     error
	lost      chan struct{} // closed when the connection ends
	closed    chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	row     *ifaceRow // the watched interface as last seen; nil: none
	seen    bool      // it existed at some point
	changed chan struct{}
}

// Dial connects to the OVSDB server at endpoint for bridge and starts
// following the Interface row named watch (in the background:
// WaitInstalled waits for it).
func Dial(ctx context.Context, endpoint, bridge, watch string) (*Direct, error) {
	if err := validName("bridge", bridge); err != nil {
		return nil, err
	}
	if err := validName("interface", watch); err != nil {
		return nil, err
	}
	m, err := newDBModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb model: %w", err)
	}
	cl, err := dialRetrying(ctx, m, endpoint)
	if err != nil {
		return nil, err
	}
	d := &Direct{cl: cl, bridge: bridge, watch: watch, changed: make(chan struct{}, 1),
		lost: make(chan struct{}), closed: make(chan struct{}), monitored: make(chan struct{}),
		dpRead: make(chan struct{})}
	go func() { // libovsdb notifies a disconnect without blocking: always listen
		select {
		case <-cl.DisconnectNotify():
			close(d.lost)
		case <-d.closed:
		}
	}()
	cl.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(_ string, m model.Model) { d.note(m, false) },
		UpdateFunc: func(_ string, _, m model.Model) { d.note(m, false) },
		DeleteFunc: func(_ string, m model.Model) { d.note(m, true) },
	})
	i := &ifaceRow{}
	mon := cl.NewMonitor(client.WithConditionalTable(i,
		[]model.Condition{{Field: &i.Name, Function: ovsdb.ConditionEqual, Value: watch}},
		&i.Name, &i.ExternalIDs, &i.OFPort, &i.Error))
	go func() { // asked at once: attach needs it before the port
		defer close(d.dpRead)
		d.dp, d.dpErr = d.readDatapathType(ctx)
	}()
	go func() { // not needed before the port exists: off the way of InsertPort
		defer close(d.monitored)
		if _, err := cl.Monitor(context.WithoutCancel(ctx), mon); err != nil {
			d.monErr = fmt.Errorf("ovsdb monitor of interface %s: %w", watch, err)
		}
	}()
	return d, nil
}

// dialTimeout bounds Dial's attempts: many plugins starting at once can
// fill the server's listen queue (EAGAIN on a unix socket), a restarting
// server refuses for a moment.
const dialTimeout = 10 * time.Second

// dialRetrying connects a libovsdb client, retrying with a short backoff
// until dialTimeout or ctx ends.
func dialRetrying(ctx context.Context, m model.ClientDBModel, endpoint string) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	quiet := logr.Discard()
	wait := 2 * time.Millisecond
	for {
		cl, err := client.NewOVSDBClient(m, client.WithEndpoint(endpoint), client.WithLogger(&quiet))
		if err != nil {
			return nil, fmt.Errorf("ovsdb client for %s: %w", endpoint, err)
		}
		if err = cl.Connect(ctx); err == nil {
			return cl, nil
		}
		cl.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s: %w", ErrNotConnected, endpoint, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Close ends the connection.
func (d *Direct) Close() {
	d.closeOnce.Do(func() { close(d.closed) })
	d.cl.Close()
	<-d.monitored
	<-d.dpRead
}

func (d *Direct) note(m model.Model, deleted bool) {
	row, ok := m.(*ifaceRow)
	if !ok || row.Name != d.watch {
		return
	}
	d.mu.Lock()
	if deleted {
		d.row = nil
	} else {
		r := *row
		d.row, d.seen = &r, true
	}
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// DatapathType returns the bridge's datapath_type as the server held it
// when Dial connected (see Client.DatapathType), ErrBridgeNotFound
// (wrapped) without the bridge.
func (d *Direct) DatapathType(ctx context.Context) (string, error) {
	select {
	case <-d.dpRead:
		return d.dp, d.dpErr
	case <-ctx.Done():
		return "", fmt.Errorf("datapath type: %w", ctx.Err())
	}
}

// readDatapathType asks the server for the bridge's datapath_type.
func (d *Direct) readDatapathType(ctx context.Context) (string, error) {
	op := ovsdb.Operation{Op: ovsdb.OperationSelect, Table: tableBridge,
		Where: []ovsdb.Condition{ovsdb.NewCondition("name", ovsdb.ConditionEqual, d.bridge)}, Columns: []string{"datapath_type"}}
	res, err := d.cl.Transact(ctx, op)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	if _, err := ovsdb.CheckOperationResults(res, []ovsdb.Operation{op}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return "", fmt.Errorf("%w: %s", ErrBridgeNotFound, d.bridge)
	}
	dp, _ := res[0].Rows[0]["datapath_type"].(string)
	return dp, nil
}

// InsertPort adds a port with one interface as spec says, in one
// transaction that also checks that the bridge exists: ErrPortExists
// (wrapped) when a port or interface of that name exists, on any bridge
// (the database's unique names refuse it; nothing is changed then), and
// ErrBridgeNotFound (wrapped) without the bridge.
func (d *Direct) InsertPort(ctx context.Context, spec PortSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if spec.Name == d.bridge {
		return fmt.Errorf("%w: %s is the bridge's local port", ErrPortConflict, spec.Name)
	}
	br := &bridgeRow{Name: d.bridge}
	byName := model.Condition{Field: &br.Name, Function: ovsdb.ConditionEqual, Value: d.bridge}
	timeout := 0
	wait, err := d.cl.WhereAny(br, byName).Wait(ovsdb.WaitConditionEqual, &timeout, br, &br.Name)
	if err != nil {
		return fmt.Errorf("add port %s: %w", spec.Name, err)
	}
	iface := desiredIface(spec, nil)
	iface.UUID = "newiface"
	port := &portRow{UUID: "newport", Name: spec.Name, Interfaces: []string{iface.UUID}}
	ins, err := d.cl.Create(iface, port)
	if err != nil {
		return fmt.Errorf("add port %s: %w", spec.Name, err)
	}
	mut, err := d.cl.WhereAny(br, byName).Mutate(br, model.Mutation{
		Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{port.UUID}})
	if err != nil {
		return fmt.Errorf("add port %s: %w", spec.Name, err)
	}
	err = transact(ctx, d.cl, append(append(wait, ins...), mut...))
	var cv *ovsdb.ConstraintViolation
	var to *ovsdb.TimedOut
	switch {
	case errors.As(err, &cv):
		return fmt.Errorf("add port %s: %w: %w", spec.Name, ErrPortExists, err)
	case errors.As(err, &to):
		return fmt.Errorf("add port %s: %w: %s", spec.Name, ErrBridgeNotFound, d.bridge)
	case err != nil:
		return fmt.Errorf("add port %s: %w", spec.Name, err)
	}
	return nil
}

// DeletePort removes the port of that name from the bridge; a missing
// port is not an error, one on another bridge an ErrPortConflict.
func (d *Direct) DeletePort(ctx context.Context, name string) error {
	if err := validName("port", name); err != nil {
		return err
	}
	sel := ovsdb.Operation{Op: ovsdb.OperationSelect, Table: tablePort,
		Where: []ovsdb.Condition{ovsdb.NewCondition("name", ovsdb.ConditionEqual, name)}, Columns: []string{"_uuid"}}
	res, err := d.cl.Transact(ctx, sel)
	if err == nil {
		_, err = ovsdb.CheckOperationResults(res, []ovsdb.Operation{sel})
	}
	if err != nil {
		return fmt.Errorf("delete port %s: %w: %w", name, ErrTransaction, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return nil
	}
	uuid, ok := res[0].Rows[0]["_uuid"].(ovsdb.UUID)
	if !ok {
		return fmt.Errorf("delete port %s: unexpected _uuid %v", name, res[0].Rows[0]["_uuid"])
	}
	set, err := ovsdb.NewOvsSet([]ovsdb.UUID{uuid})
	if err != nil {
		return fmt.Errorf("delete port %s: %w", name, err)
	}
	mut := ovsdb.Operation{Op: ovsdb.OperationMutate, Table: tableBridge,
		Where: []ovsdb.Condition{ovsdb.NewCondition("name", ovsdb.ConditionEqual, d.bridge),
			ovsdb.NewCondition("ports", ovsdb.ConditionIncludes, set)},
		Mutations: []ovsdb.Mutation{*ovsdb.NewMutation("ports", ovsdb.MutateOperationDelete, set)}}
	res, err = d.cl.Transact(ctx, mut)
	if err == nil {
		_, err = ovsdb.CheckOperationResults(res, []ovsdb.Operation{mut})
	}
	if err != nil {
		return fmt.Errorf("delete port %s: %w: %w", name, ErrTransaction, err)
	}
	if len(res) == 0 || res[0].Count == 0 {
		return fmt.Errorf("%w: port %s is not on bridge %s", ErrPortConflict, name, d.bridge)
	}
	return nil
}

// WaitInstalled is Client.WaitInstalled for the interface Dial follows:
// it returns once the agent has installed its flows for ip, a
// *RefusedError when the agent says why it does not, ErrInterfaceGone
// (wrapped) when the interface leaves the database after it was seen, and
// ctx's error (wrapped) when ctx ends first, or ErrNotConnected (wrapped)
// when the connection is lost.
func (d *Direct) WaitInstalled(ctx context.Context, iface string, ip netip.Addr) error {
	if iface != d.watch {
		return fmt.Errorf("interface %s: this connection follows %s only", iface, d.watch)
	}
	select {
	case <-d.monitored:
		if d.monErr != nil {
			return d.monErr
		}
	case <-ctx.Done():
		return fmt.Errorf("interface %s: not installed: %w", iface, ctx.Err())
	}
	for {
		d.mu.Lock()
		row, seen := d.row, d.seen
		d.mu.Unlock()
		switch {
		case row != nil:
			if done, err := installedYet(iface, ip, row.ExternalIDs); done {
				return err
			}
		case seen:
			return fmt.Errorf("interface %s: %w", iface, ErrInterfaceGone)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interface %s: not installed: %w", iface, ctx.Err())
		case <-d.lost:
			return fmt.Errorf("interface %s: %w: connection lost", iface, ErrNotConnected)
		case <-d.changed:
		}
	}
}
