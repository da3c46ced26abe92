package openflow

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/contiv/libOpenflow/util"
)

// Send queues msg without waiting for any reply and returns the xid it was
// given (the connection assigns xids, version and length). An error the
// switch sends for it is returned by the next Barrier. Send blocks only
// while the send queue is full (Config.MaxQueuedBytes).
func (c *Conn) Send(msg util.Message) (uint32, error) {
	xid := c.nextXid()
	b, err := encode(msg, xid)
	if err != nil {
		return 0, err
	}
	return xid, c.enqueue([][]byte{b}, nil)
}

// enqueue records msgs as sent (for error reports), registers cl under the
// xid of the last message if cl is set, and queues them for the writer.
func (c *Conn) enqueue(msgs [][]byte, cl *call) error {
	c.mu.Lock()
	if err := c.errLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	for _, b := range msgs {
		c.sent.put(describe(b))
	}
	if cl != nil {
		last := msgs[len(msgs)-1]
		c.calls[binary.BigEndian.Uint32(last[4:8])] = cl
	}
	c.mu.Unlock()
	if err := c.w.enqueueAll(msgs, false, c.quit); err != nil {
		return err // the connection's error (or ErrClosed while it is being recorded)
	}
	c.nSent.Add(uint64(len(msgs)))
	return nil
}

// errLocked is Err with c.mu held.
func (c *Conn) errLocked() error {
	select {
	case <-c.quit:
		return c.err
	default:
		return nil
	}
}

// withTimeout applies Config.RequestTimeout to a context without deadline.
func (c *Conn) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// roundTrip sends the encoded messages, the last one being a request, and
// waits until cl completes, ctx ends or the connection fails.
func (c *Conn) roundTrip(ctx context.Context, what string, msgs [][]byte, cl *call) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	last := msgs[len(msgs)-1]
	xid := binary.BigEndian.Uint32(last[4:8])
	if err := c.enqueue(msgs, cl); err != nil {
		return errCallFailed(what, err)
	}
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
	case <-c.quit:
	}
	why := c.Err()
	if why == nil {
		why = context.Cause(ctx)
	}
	err := c.abandon(what, xid, cl, why)
	select {
	case <-cl.done: // completed meanwhile
		return cl.err
	default:
		return err
	}
}

// Request sends msg and waits for its single reply, decoded with
// libOpenflow. An OFPT_ERROR reply is returned as *OFError. Without a
// deadline on ctx, Config.RequestTimeout applies.
func (c *Conn) Request(ctx context.Context, msg util.Message) (util.Message, error) {
	xid := c.nextXid()
	b, err := encode(msg, xid)
	if err != nil {
		return nil, err
	}
	cl := newCall()
	if err := c.roundTrip(ctx, describe(b).String(), [][]byte{b}, cl); err != nil {
		return nil, err
	}
	return decodeMessage(cl.reply)
}

// Barrier sends a barrier request and waits for its reply. The switch
// answers it only after finishing every earlier message, so the result
// includes the errors of earlier fire-and-forget messages (Send, Pipeline,
// bundle adds) not yet collected by another Barrier, joined (each an
// *OFError naming its message; use errors.As).
func (c *Conn) Barrier(ctx context.Context) error {
	return c.barrier(ctx, nil, func(*OFError, bool) bool { return true })
}

// barrier sends msgs (may be empty) followed by a barrier request; claim
// selects the late errors returned.
func (c *Conn) barrier(ctx context.Context, msgs [][]byte, claim func(*OFError, bool) bool) error {
	req := c.stamped(typeBarrierRequest)
	cl := newCall()
	cl.claim = claim
	if err := c.roundTrip(ctx, describe(req).String(), append(msgs, req), cl); err != nil {
		return err
	}
	return errors.Join(cl.claimed...)
}

// Pipeline sends msgs back to back without waiting, then one barrier, and
// returns the errors the switch reported for them (joined *OFError values,
// see Barrier). Every message is encoded before the first is sent: an
// encoding error sends nothing.
func (c *Conn) Pipeline(ctx context.Context, msgs []util.Message) error {
	enc := make([][]byte, 0, len(msgs))
	for i, m := range msgs {
		b, err := encode(m, c.nextXid())
		if err != nil {
			return wrap(err, "pipeline message %d", i)
		}
		enc = append(enc, b)
	}
	return c.barrier(ctx, enc, func(*OFError, bool) bool { return true })
}

// multipartAll sends a multipart request of type mpType with body and
// returns what parse makes of the bodies of all its replies
// (OFPMPF_REPLY_MORE followed), in order.
func multipartAll[T any](ctx context.Context, c *Conn, mpType uint16, body []byte, parse func([]byte) ([]T, error)) ([]T, error) {
	var out []T
	err := c.multipartEach(ctx, mpType, body, func(b []byte) error {
		items, err := parse(b)
		out = append(out, items...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// collect is a multipartEach callback that appends every body to bodies.
func collect(bodies *[][]byte) func([]byte) error {
	return func(b []byte) error { *bodies = append(*bodies, b); return nil }
}

// multipartEach sends a multipart request of type mpType with body and
// calls each with the body of every reply, in order, as the replies arrive
// (a long reply is never held whole). An error from each abandons the
// request: its later replies are dropped.
func (c *Conn) multipartEach(ctx context.Context, mpType uint16, body []byte, each func([]byte) error) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	xid := c.nextXid()
	b := multipartRequest(mpType, body, xid)
	what := describe(b).String()
	cl := newCall()
	cl.multipart, cl.arrived = true, make(chan struct{}, 1)
	if err := c.enqueue([][]byte{b}, cl); err != nil {
		return errCallFailed(what, err)
	}
	for {
		finished := false
		select {
		case <-cl.arrived:
		case <-cl.done:
			finished = true
		case <-ctx.Done():
			return c.abandon(what, xid, cl, context.Cause(ctx))
		case <-c.quit:
			return c.abandon(what, xid, cl, c.Err())
		}
		if err := c.takeParts(cl, mpType, each); err != nil {
			c.abandon(what, xid, cl, err)
			return err
		}
		if finished {
			return cl.err
		}
	}
}

// takeParts hands the replies cl holds so far to each.
func (c *Conn) takeParts(cl *call, mpType uint16, each func([]byte) error) error {
	c.mu.Lock()
	parts := cl.parts
	cl.parts = nil
	c.mu.Unlock()
	for _, p := range parts {
		part, err := parseMultipartReply(p)
		if err != nil {
			return err
		}
		if part.Type != mpType {
			return malformed("%s request answered with %s", multipartTypeName(mpType), multipartTypeName(part.Type))
		}
		if err := each(part.Body); err != nil {
			return err
		}
	}
	return nil
}

// abandon stops waiting for cl and returns why, as a failed call.
func (c *Conn) abandon(what string, xid uint32, cl *call, why error) error {
	c.mu.Lock()
	if c.calls[xid] == cl {
		delete(c.calls, xid)
	}
	c.mu.Unlock()
	return errCallFailed(what, why)
}
