package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// maxRowsPerWrite bounds the rows of one external_ids transaction, so that
// marking 10,000 endpoints at once is a few transactions, none huge.
const maxRowsPerWrite = 1000

// idWriter holds the external_ids writes asked of the client's background
// writer: per Interface row (by UUID), the wanted value of each key ("":
// remove it), the latest request winning.
type idWriter struct {
	mu   sync.Mutex
	want map[string]map[string]string
	kick chan struct{} // capacity 1
}

// SetExternalIDs asks for the external_ids of the Interface row with that
// UUID to hold ids (a key with value "" is removed; other keys are left
// alone) and returns at once. A goroutine of Run writes the latest request
// of every row, in transactions of up to 1,000 rows, skipping rows whose
// cached external_ids already agree and rows that are gone, and retries
// after RepairRetry when a transaction fails. It never blocks the caller on
// OVSDB.
func (c *Client) SetExternalIDs(uuid string, ids map[string]string) {
	w := &c.ids
	w.mu.Lock()
	if w.want == nil {
		w.want = map[string]map[string]string{}
	}
	row := w.want[uuid]
	if row == nil {
		row = make(map[string]string, len(ids))
		w.want[uuid] = row
	}
	maps.Copy(row, ids)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// take returns the pending requests and empties the queue.
func (w *idWriter) take() map[string]map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.want
	w.want = nil
	return out
}

// putBack requeues requests that failed, under any newer one of the same
// row and key.
func (w *idWriter) putBack(failed map[string]map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.want == nil {
		w.want = map[string]map[string]string{}
	}
	for uuid, ids := range failed {
		newer := w.want[uuid]
		merged := maps.Clone(ids)
		maps.Copy(merged, newer)
		w.want[uuid] = merged
	}
}

// writeIDs runs the background writer until ctx ends.
func (c *Client) writeIDs(ctx context.Context) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ids.kick:
		case <-retry:
		}
		retry = nil
		pending := c.ids.take()
		if len(pending) == 0 {
			continue
		}
		if err := c.withConn(ctx, func(cl client.Client) error { return c.writeBatches(ctx, cl, pending) }); err != nil {
			c.ids.putBack(pending) // rows written already are skipped next time: the cache agrees
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("writing interface external_ids failed, retrying", "rows", len(pending), "err", err, "in", c.cfg.RepairRetry)
			c.note(func(s *Stats) { s.IDWriteFailures++; s.LastError = err })
			retry = time.After(c.cfg.RepairRetry)
		}
	}
}

// writeBatches writes the rows whose cached external_ids differ from the
// request, in transactions of at most maxRowsPerWrite rows.
func (c *Client) writeBatches(ctx context.Context, cl client.Client, pending map[string]map[string]string) error {
	var ops []ovsdb.Operation
	rows := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		c.opMu.Lock()
		err := transact(ctx, cl, ops)
		c.opMu.Unlock()
		if err != nil {
			return fmt.Errorf("write external_ids of %d interfaces: %w", rows, err)
		}
		c.note(func(s *Stats) { s.IDWrites += uint64(rows) })
		ops, rows = ops[:0], 0
		return nil
	}
	for _, uuid := range slices.Sorted(maps.Keys(pending)) {
		op, err := idOps(cl, uuid, pending[uuid])
		if err != nil {
			return err
		}
		if op == nil {
			continue
		}
		ops = append(ops, op...)
		if rows++; rows == maxRowsPerWrite {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// idOps is the mutation that brings one row's external_ids to ids, or nil
// when the cache shows it there already or the row is gone.
func idOps(cl client.Client, uuid string, ids map[string]string) ([]ovsdb.Operation, error) {
	row, err := cachedRow[ifaceRow](cl, tableIface, uuid)
	if err != nil || row == nil {
		return nil, err
	}
	var del []string
	set := map[string]string{}
	for k, v := range ids {
		have, ok := row.ExternalIDs[k]
		if v == have && (v != "" || !ok) {
			continue // as wanted
		}
		del = append(del, k) // removed, or removed and inserted anew
		if v != "" {
			set[k] = v
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	slices.Sort(del)
	// Insert does not replace a present key: delete the keys first, in
	// the same operation.
	muts := []model.Mutation{{Field: &row.ExternalIDs, Mutator: ovsdb.MutateOperationDelete, Value: del}}
	if len(set) > 0 {
		muts = append(muts, model.Mutation{Field: &row.ExternalIDs, Mutator: ovsdb.MutateOperationInsert, Value: set})
	}
	ops, err := cl.Where(&ifaceRow{UUID: uuid}).Mutate(row, muts...)
	if err != nil {
		return nil, fmt.Errorf("external_ids of interface %s: %w", uuid, err)
	}
	return ops, nil
}
