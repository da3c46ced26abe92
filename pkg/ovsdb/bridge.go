package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// EnsureBridge creates the integration bridge as configured (fail_mode
// secure from the first transaction, OpenFlow13 only, the datapath type, a
// fixed other_config:hwaddr, disable-in-band, and its local internal port) or
// fixes the columns that differ, and from then on keeps it so. It waits for
// a connection until ctx ends.
func (c *Client) EnsureBridge(ctx context.Context) error {
	c.mu.Lock()
	c.wantBridge = true
	c.mu.Unlock()
	return c.withConn(ctx, func(cl client.Client) error {
		c.opMu.Lock()
		defer c.opMu.Unlock()
		r, err := readRows(ctx, cl, "")
		if err != nil {
			return err
		}
		wrote, err := c.applyBridge(ctx, cl, &r)
		if err == nil {
			c.appliedBridge(wrote)
		}
		return err
	})
}

// SetFlowRestoreWait sets (on) or removes (off) other_config:flow-restore-wait
// on the Open_vSwitch row: while set, vswitchd keeps its datapath flows and
// does not talk to controllers.
func (c *Client) SetFlowRestoreWait(ctx context.Context, on bool) error {
	return c.withConn(ctx, func(cl client.Client) error {
		r, err := readRows(ctx, cl, "")
		if err != nil {
			return err
		}
		if len(r.root) == 0 {
			return ErrNoRootRow
		}
		root := &r.root[0]
		muts := []model.Mutation{{Field: &root.OtherConfig, Mutator: ovsdb.MutateOperationDelete, Value: []string{keyRestore}}}
		if on {
			muts = append(muts, model.Mutation{Field: &root.OtherConfig, Mutator: ovsdb.MutateOperationInsert,
				Value: map[string]string{keyRestore: "true"}})
		}
		ops, err := cl.Where(root).Mutate(root, muts...)
		if err != nil {
			return fmt.Errorf("flow-restore-wait: %w", err)
		}
		return transact(ctx, cl, ops)
	})
}

// FlowRestoreWait reports whether other_config:flow-restore-wait is "true".
// Before the first connection it answers from the snapshot, if one was read
// (Preload): whoever sets it does so before restarting
// ovs-vswitchd, which makes the agent reconnect and ask again.
func (c *Client) FlowRestoreWait(ctx context.Context) (bool, error) {
	c.mu.Lock()
	snap := c.snapRestore
	c.mu.Unlock()
	if snap != nil { // not connected yet: as the snapshot read it
		return *snap, nil
	}
	var on bool
	err := c.withConn(ctx, func(cl client.Client) error {
		r, err := readRows(ctx, cl, "")
		if err != nil {
			return err
		}
		if len(r.root) == 0 {
			return ErrNoRootRow
		}
		on = r.root[0].OtherConfig[keyRestore] == "true"
		return nil
	})
	return on, err
}

// reconcile puts back the bridge and tunnel port once they were ensured.
func (c *Client) reconcile(ctx context.Context, cl client.Client) error {
	c.mu.Lock()
	wantBridge, tunnel := c.wantBridge, c.tunnel
	c.mu.Unlock()
	if !wantBridge && tunnel == nil {
		return nil
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	tunnelName := ""
	if tunnel != nil {
		tunnelName = tunnel.Name
	}
	r, err := readRows(ctx, cl, tunnelName)
	if err != nil {
		return err
	}
	if wantBridge {
		wrote, err := c.applyBridge(ctx, cl, &r)
		if err != nil {
			return fmt.Errorf("repair bridge: %w", err)
		}
		c.appliedBridge(wrote)
		if wrote {
			if r, err = readRows(ctx, cl, tunnelName); err != nil {
				return err
			}
		}
	}
	if tunnel != nil {
		wrote, err := c.ensurePort(ctx, cl, &r, tunnel.portSpec(), tunnel.options())
		if err != nil {
			return fmt.Errorf("repair tunnel port: %w", err)
		}
		c.appliedTunnel(tunnel, wrote)
	}
	return nil
}

// appliedBridge records that the bridge is as configured; a write after it
// had been so once is a repair.
func (c *Client) appliedBridge(wrote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wrote && c.bridgeOK {
		c.stats.Repairs++
	}
	c.bridgeOK = true
}

// appliedTunnel is appliedBridge for the tunnel port spec t, unless the spec
// was replaced meanwhile.
func (c *Client) appliedTunnel(t *TunnelSpec, wrote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tunnel != t {
		return
	}
	if wrote && c.tunnelOK {
		c.stats.Repairs++
	}
	c.tunnelOK = true
}

// applyBridge creates or fixes the bridge; it reports whether it wrote.
func (c *Client) applyBridge(ctx context.Context, cl client.Client, r *rows) (bool, error) {
	cfg := c.cfg.Bridge
	br := r.bridge(cfg.Name)
	if br == nil {
		if len(r.root) == 0 {
			return false, ErrNoRootRow
		}
		ops, err := createBridgeOps(cl, &r.root[0], cfg)
		if err != nil {
			return false, err
		}
		c.log.Info("creating bridge", "datapath_type", cfg.DatapathType, "hwaddr", cfg.HWAddr.String())
		return true, transact(ctx, cl, ops)
	}
	d := bridgeDrift(br, cfg)
	d.tables = tableDrift(br, cfg.TableNames, r.flowTables, &d.was)
	if d.empty() {
		return false, nil
	}
	c.log.Warn("bridge changed out of band, putting it back", "drift", d.String())
	ops, err := bridgeRepairOps(cl, br.UUID, cfg, d)
	if err != nil {
		return false, err
	}
	return true, transact(ctx, cl, ops)
}

// desiredBridge is the bridge row as configured, without ports.
func desiredBridge(cfg BridgeConfig) *bridgeRow {
	secure := failSecure
	return &bridgeRow{
		Name:         cfg.Name,
		FailMode:     &secure,
		Protocols:    []string{protoOF13},
		DatapathType: cfg.DatapathType,
		OtherConfig:  desiredOtherConfig(cfg),
	}
}

func desiredOtherConfig(cfg BridgeConfig) map[string]string {
	return map[string]string{keyHWAddr: cfg.HWAddr.String(), keyInBand: "true"}
}

// drift is how a bridge row differs from its configuration.
type drift struct {
	columns     []string          // fail_mode, protocols, datapath_type
	otherConfig map[string]string // other_config keys to set, desired values
	tables      []int             // flow_tables entries to (re)name
	was         []string          // what was found, for the log
}

func (d drift) empty() bool {
	return len(d.columns) == 0 && len(d.otherConfig) == 0 && len(d.tables) == 0
}

// tableDrift lists the tables of names whose flow_tables entry is missing or
// names them otherwise, noting what it found in was.
func tableDrift(br *bridgeRow, names map[int]string, rows []flowTableRow, was *[]string) []int {
	var out []int
	for _, id := range slices.Sorted(maps.Keys(names)) {
		got := ""
		if i := slices.IndexFunc(rows, func(r flowTableRow) bool { return r.UUID == br.FlowTables[id] }); i >= 0 {
			got = derefString(rows[i].Name)
		}
		if got != names[id] {
			out = append(out, id)
			*was = append(*was, fmt.Sprintf("flow_tables:%d=%q", id, got))
		}
	}
	return out
}

// newFlowTables are new Flow_Table rows naming tables ids, and the
// flow_tables entries that refer to them.
func newFlowTables(names map[int]string, ids []int) ([]model.Model, map[int]string) {
	rows, refs := make([]model.Model, 0, len(ids)), map[int]string{}
	for _, id := range ids {
		name := names[id]
		r := &flowTableRow{UUID: fmt.Sprintf("newflowtable%d", id), Name: &name}
		rows, refs[id] = append(rows, r), r.UUID
	}
	return rows, refs
}

func (d drift) String() string { return strings.Join(d.was, " ") }

// bridgeDrift compares a bridge row with its configuration.
func bridgeDrift(br *bridgeRow, cfg BridgeConfig) drift {
	var d drift
	if br.FailMode == nil || *br.FailMode != failSecure {
		d.columns = append(d.columns, "fail_mode")
		d.was = append(d.was, "fail_mode="+derefString(br.FailMode))
	}
	if !slices.Equal(br.Protocols, []string{protoOF13}) {
		d.columns = append(d.columns, "protocols")
		d.was = append(d.was, "protocols="+strings.Join(br.Protocols, ","))
	}
	if br.DatapathType != cfg.DatapathType {
		d.columns = append(d.columns, "datapath_type")
		d.was = append(d.was, "datapath_type="+br.DatapathType)
	}
	for k, v := range desiredOtherConfig(cfg) {
		got, ok := br.OtherConfig[k]
		if ok && (got == v || k == keyHWAddr && sameMAC(got, cfg.HWAddr)) {
			continue
		}
		if d.otherConfig == nil {
			d.otherConfig = map[string]string{}
		}
		d.otherConfig[k] = v
		d.was = append(d.was, "other_config:"+k+"="+got)
	}
	slices.Sort(d.was)
	return d
}

func sameMAC(s string, want net.HardwareAddr) bool {
	mac, err := net.ParseMAC(s)
	return err == nil && slices.Equal(mac, want)
}

func createBridgeOps(cl client.Client, root *ovsRow, cfg BridgeConfig) ([]ovsdb.Operation, error) {
	iface := &ifaceRow{UUID: "newlocaliface", Name: cfg.Name, Type: ifaceInternal}
	port := &portRow{UUID: "newlocalport", Name: cfg.Name, Interfaces: []string{iface.UUID}}
	br := desiredBridge(cfg)
	br.UUID, br.Ports = "newbridge", []string{port.UUID}
	tables, named := newFlowTables(cfg.TableNames, slices.Sorted(maps.Keys(cfg.TableNames)))
	br.FlowTables = named
	ops, err := cl.Create(append([]model.Model{iface, port, br}, tables...)...)
	if err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", cfg.Name, err)
	}
	mut, err := cl.Where(root).Mutate(root, model.Mutation{
		Field: &root.Bridges, Mutator: ovsdb.MutateOperationInsert, Value: []string{br.UUID}})
	if err != nil {
		return nil, fmt.Errorf("attach bridge %s: %w", cfg.Name, err)
	}
	return append(ops, mut...), nil
}

func bridgeRepairOps(cl client.Client, uuid string, cfg BridgeConfig, d drift) ([]ovsdb.Operation, error) {
	want := desiredBridge(cfg)
	want.UUID = uuid
	var ops []ovsdb.Operation
	if len(d.columns) > 0 {
		upd, err := cl.Where(want).Update(want, &want.FailMode, &want.Protocols, &want.DatapathType)
		if err != nil {
			return nil, fmt.Errorf("repair bridge %s: %w", cfg.Name, err)
		}
		ops = append(ops, upd...)
	}
	if len(d.otherConfig) > 0 {
		keys := slices.Sorted(maps.Keys(d.otherConfig))
		mut, err := cl.Where(want).Mutate(want,
			model.Mutation{Field: &want.OtherConfig, Mutator: ovsdb.MutateOperationDelete, Value: keys},
			model.Mutation{Field: &want.OtherConfig, Mutator: ovsdb.MutateOperationInsert, Value: d.otherConfig})
		if err != nil {
			return nil, fmt.Errorf("repair bridge %s other_config: %w", cfg.Name, err)
		}
		ops = append(ops, mut...)
	}
	if len(d.tables) > 0 {
		rows, refs := newFlowTables(cfg.TableNames, d.tables)
		create, err := cl.Create(rows...)
		if err != nil {
			return nil, fmt.Errorf("name bridge %s tables: %w", cfg.Name, err)
		}
		mut, err := cl.Where(want).Mutate(want,
			model.Mutation{Field: &want.FlowTables, Mutator: ovsdb.MutateOperationDelete, Value: d.tables},
			model.Mutation{Field: &want.FlowTables, Mutator: ovsdb.MutateOperationInsert, Value: refs})
		if err != nil {
			return nil, fmt.Errorf("name bridge %s tables: %w", cfg.Name, err)
		}
		ops = append(append(ops, create...), mut...)
	}
	return ops, nil
}

// transact runs ops and turns a rejected operation into an error naming it.
func transact(ctx context.Context, cl client.Client, ops []ovsdb.Operation) error {
	if len(ops) == 0 {
		return nil
	}
	res, err := cl.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	opErrs, err := ovsdb.CheckOperationResults(res, ops)
	if err == nil {
		return nil
	}
	errs := []error{err}
	for _, e := range opErrs {
		errs = append(errs, e)
	}
	return fmt.Errorf("%w: %w", ErrTransaction, errors.Join(errs...))
}
