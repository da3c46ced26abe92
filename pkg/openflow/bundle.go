package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// BundleFlags are the ONF bundle flags.
type BundleFlags uint16

// Bundle flags: Atomic applies all messages or none; Ordered applies them
// in the order added.
const (
	BundleAtomic  BundleFlags = BundleFlags(openflow13.OFPBCT_ATOMIC)
	BundleOrdered BundleFlags = BundleFlags(openflow13.OFPBCT_ORDERED)
)

// Bundle is an open ONF bundle (OpenFlow 1.3 extension, Open vSwitch >=
// 2.6). Add queues messages without waiting; Commit applies them; Discard
// drops them. Open vSwitch discards a bundle left idle for 10 s. A Bundle
// is not safe for concurrent use.
type Bundle struct {
	c     *Conn
	id    uint32
	flags BundleFlags
	open  *call // the open request, answered before any later request
	added int
	ended bool
	// xids are the xids of the added messages, as runs of consecutive
	// xids (a few runs per bundle: only concurrent requests on the
	// connection break a run), so an error is traced to its message.
	xids []xidRun
}

// xidRun is n consecutive xids from first, given to the messages added
// from position at.
type xidRun struct {
	first uint32
	n, at int
}

// Bundle opens an atomic, ordered bundle.
func (c *Conn) Bundle(ctx context.Context) (*Bundle, error) {
	return c.OpenBundle(ctx, BundleAtomic|BundleOrdered)
}

// OpenBundle opens a bundle with the given flags. The open request is
// pipelined with the adds, not waited for: the switch answers requests in
// order, so Commit and Discard, which wait for later replies anyway, check
// its answer (one round trip less per bundle). ctx is not used.
func (c *Conn) OpenBundle(_ context.Context, flags BundleFlags) (*Bundle, error) {
	b := &Bundle{c: c, id: c.bundleID.Add(1), flags: flags, open: newCall()}
	raw, err := b.controlBytes(openflow13.OFPBCT_OPEN_REQUEST)
	if err != nil {
		return nil, err
	}
	if err := c.enqueue([][]byte{raw}, b.open); err != nil {
		return nil, errCallFailed(describe(raw).String(), err)
	}
	return b, nil
}

// opened checks the answer to the open request; it is called after a later
// request was answered, so the answer is in.
func (b *Bundle) opened() error {
	select {
	case <-b.open.done:
	default:
		return fmt.Errorf("openflow: bundle %d: open request not answered", b.id)
	}
	if b.open.err != nil {
		return b.open.err
	}
	return b.checkReply(openflow13.OFPBCT_OPEN_REQUEST, b.open.reply)
}

// ID is the bundle's ID on this connection.
func (b *Bundle) ID() uint32 { return b.id }

// Len is the number of messages added.
func (b *Bundle) Len() int { return b.added }

// Add queues msg into the bundle without waiting. The inner message and the
// bundle-add message share one xid, so the switch's error for a failing
// message names it. Errors surface at Commit.
func (b *Bundle) Add(msg util.Message) error {
	if b.ended {
		return fmt.Errorf("openflow: bundle %d: add after commit or discard", b.id)
	}
	xid := b.c.nextXid()
	inner, err := encode(msg, xid)
	if err != nil {
		return wrap(err, "bundle %d", b.id)
	}
	if err := b.c.enqueue([][]byte{b.addBytes(inner, xid)}, nil); err != nil {
		return wrap(err, "bundle %d add", b.id)
	}
	if n := len(b.xids); n > 0 && b.xids[n-1].first+uint32(b.xids[n-1].n) == xid {
		b.xids[n-1].n++
	} else {
		b.xids = append(b.xids, xidRun{first: xid, n: 1, at: b.added})
	}
	b.added++
	return nil
}

// index returns the position (0-based, in Add order) of the message
// added with xid.
func (b *Bundle) index(xid uint32) (int, bool) {
	for _, r := range b.xids {
		if d := xid - r.first; d < uint32(r.n) {
			return r.at + int(d), true
		}
	}
	return 0, false
}

// addBytes wraps an encoded message into an ONF bundle-add message:
// experimenter header, bundle_id, pad[2], flags, message.
func (b *Bundle) addBytes(inner []byte, xid uint32) []byte {
	m := make([]byte, headerLen+16+len(inner)) // one allocation: every flow_mod of a bundle comes here
	m[1] = typeExperimenter
	body := m[headerLen:]
	binary.BigEndian.PutUint32(body[0:4], onfExperimenter)
	binary.BigEndian.PutUint32(body[4:8], expBundleAdd)
	binary.BigEndian.PutUint32(body[8:12], b.id)
	binary.BigEndian.PutUint16(body[14:16], uint16(b.flags))
	copy(body[16:], inner)
	stamp(m, xid)
	return m
}

// inBundle selects the errors of messages added to this bundle (by xid
// too: a message of a large bundle may have left the record of sent
// messages).
func (b *Bundle) inBundle(e *OFError, _ bool) bool {
	if e.Known && e.Request.InBundle && e.Request.BundleID == b.id {
		return true
	}
	_, ok := b.index(e.Xid)
	return ok
}

// failed builds the error of a failed bundle from the errors of op.
func (b *Bundle) failed(op string, errs []error) *BundleError {
	be := &BundleError{ID: b.id, Op: op, Errs: errs}
	for _, err := range errs {
		var oe *OFError
		if errors.As(err, &oe) {
			if i, ok := b.index(oe.Xid); ok {
				be.Refused = append(be.Refused, RefusedMessage{Index: i, Err: oe})
			}
		}
	}
	return be
}

// Commit applies the bundle. It first waits (barrier) for the switch to
// have seen every added message: Open vSwitch rejects a bad message at add
// time and would commit the others, so on any add error the bundle is
// discarded instead. Either way a failed Commit returns a *BundleError
// holding an *OFError per failing message (its xid, type, table, priority,
// cookie), Refused lists the refused messages by position, and nothing
// was applied.
func (b *Bundle) Commit(ctx context.Context) error {
	if b.ended {
		return fmt.Errorf("openflow: bundle %d: already committed or discarded", b.id)
	}
	b.ended = true
	if err := b.c.barrier(ctx, nil, b.inBundle); err != nil {
		var oe *OFError
		if !errors.As(err, &oe) {
			return wrap(err, "bundle %d", b.id)
		}
		derr := b.control(ctx, openflow13.OFPBCT_DISCARD_REQUEST, nil)
		return b.failed("add", append(unjoin(err), cleanupErrs(derr)...))
	}
	if err := b.opened(); err != nil {
		derr := b.control(ctx, openflow13.OFPBCT_DISCARD_REQUEST, nil)
		return b.failed("open", append([]error{err}, cleanupErrs(derr)...))
	}
	var inner []error
	err := b.control(ctx, openflow13.OFPBCT_COMMIT_REQUEST, &inner)
	var oe *OFError
	if errors.As(err, &oe) {
		return b.failed("commit", append(inner, err))
	}
	return err
}

// Discard drops the bundle.
func (b *Bundle) Discard(ctx context.Context) error {
	if b.ended {
		return nil
	}
	b.ended = true
	return b.control(ctx, openflow13.OFPBCT_DISCARD_REQUEST, nil)
}

// control sends a bundle control request and checks the reply type. When
// inner is set and the request fails, the errors of this bundle's
// messages received before the failure are stored there.
func (b *Bundle) control(ctx context.Context, typ uint16, inner *[]error) error {
	raw, err := b.controlBytes(typ)
	if err != nil {
		return err
	}
	cl := newCall()
	if inner != nil {
		cl.claim = func(e *OFError, failed bool) bool { return failed && b.inBundle(e, failed) }
	}
	err = b.c.roundTrip(ctx, describe(raw).String(), [][]byte{raw}, cl)
	if inner != nil {
		*inner = cl.claimed
	}
	if err != nil {
		return err
	}
	return b.checkReply(typ, cl.reply)
}

// controlBytes encodes a bundle control request of type typ with a fresh xid.
func (b *Bundle) controlBytes(typ uint16) ([]byte, error) {
	msg := openflow13.NewBundleControl(&openflow13.BundleControl{BundleID: b.id, Type: typ, Flags: uint16(b.flags)})
	return encode(msg, b.c.nextXid())
}

// checkReply checks that reply answers the control request of type typ.
func (b *Bundle) checkReply(typ uint16, reply []byte) error {
	r, err := parseBundleCtrl(reply)
	if err != nil {
		return err
	}
	if r.ID != b.id || r.Type != typ+1 {
		return malformed("bundle %d %s answered with bundle %d %s", b.id, bundleCtrlTypeName(typ),
			r.ID, bundleCtrlTypeName(r.Type))
	}
	return nil
}

// unjoin splits an errors.Join result.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// cleanupErrs wraps a failed cleanup step, if any.
func cleanupErrs(err error) []error {
	if err == nil {
		return nil
	}
	return []error{fmt.Errorf("discarding the bundle: %w", err)}
}
