package openflow

import (
	"bytes"
	"fmt"
)

// dispatch handles one message from the switch on the reader goroutine. It
// never blocks on callers. Only a framing-level violation is returned (it
// ends the connection); a message that does not decode is logged and, when
// it answers a request, fails that request.
func (c *Conn) dispatch(b []byte) error {
	h, err := parseHeader(b)
	if err != nil {
		return err
	}
	if h.Version != ofVersion {
		if h.Type == typeError {
			// Open vSwitch 3.1 answers a flow monitor request it refuses
			// with an error whose version and xid come from uninitialized
			// memory (or with nothing): it cannot be routed. MonitorFlows
			// detects the refusal with a barrier instead.
			c.log.Warn("openflow: error message with a foreign version ignored", "version", h.Version, "bytes", fmt.Sprintf("%x", b[:min(len(b), 32)]))
			return nil
		}
		return malformed("%s with version %#02x on an OpenFlow 1.3 connection", MsgTypeName(h.Type), h.Version)
	}
	switch h.Type {
	case typeEchoRequest:
		r := bytes.Clone(b)
		r[1] = typeEchoReply
		return c.w.enqueue(r, true, c.quit)
	case typeHello:
		// liveness only
	case typeEchoReply:
		c.complete(h.Xid, b, nil) // our keepalive echoes have no waiting call
	case typeError:
		c.handleError(b)
	case typePortStatus:
		c.handlePortStatus(b)
	case typeMultipartReply:
		c.handleMultipart(h.Xid, b)
	case typeExperimenter:
		if !c.handlePauseSignal(b) && !c.complete(h.Xid, b, nil) {
			c.log.Debug("openflow: unsolicited message ignored", "type", MsgTypeName(h.Type), "xid", h.Xid)
		}
	default:
		if !c.complete(h.Xid, b, nil) {
			c.log.Debug("openflow: unsolicited message ignored", "type", MsgTypeName(h.Type), "xid", h.Xid)
		}
	}
	return nil
}

// complete finishes the call waiting for xid with a reply or an error. It
// reports whether a call was waiting.
func (c *Conn) complete(xid uint32, reply []byte, err error) bool {
	c.mu.Lock()
	cl := c.calls[xid]
	if cl == nil {
		c.mu.Unlock()
		return false
	}
	delete(c.calls, xid)
	if cl.claim != nil {
		cl.claimed = c.claimLate(cl.claim, err != nil)
	}
	c.mu.Unlock()
	cl.reply, cl.err = reply, err
	close(cl.done)
	return true
}

// claimLate removes and returns the late errors that keep accepts. c.mu held.
func (c *Conn) claimLate(keep func(*OFError, bool) bool, failed bool) []error {
	var claimed []error
	rest := c.late[:0]
	for _, e := range c.late {
		if keep(e, failed) {
			claimed = append(claimed, e)
		} else {
			rest = append(rest, e)
		}
	}
	clear(c.late[len(rest):])
	c.late = rest
	return claimed
}

// handleError routes an OFPT_ERROR to the request with its xid, or keeps it
// for the next Barrier when the message was sent fire-and-forget.
func (c *Conn) handleError(b []byte) {
	e, err := parseError(b)
	if err != nil {
		c.log.Warn("openflow: undecodable error message from switch", "err", err)
		h, _ := parseHeader(b)
		c.complete(h.Xid, nil, err)
		return
	}
	c.mu.Lock()
	if m, ok := c.sent.get(e.Xid); ok {
		e.Request, e.Known = m, true
	}
	c.mu.Unlock()
	if c.complete(e.Xid, nil, e) {
		return
	}
	c.log.Debug("openflow: error for a fire-and-forget message", "err", e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.late) >= c.cfg.MaxLateErrors {
		c.lateDropped++
		c.log.Warn("openflow: unclaimed error dropped (no Barrier collected it)", "err", c.late[0])
		copy(c.late, c.late[1:])
		c.late = c.late[:len(c.late)-1]
	}
	c.late = append(c.late, e)
}

// handleMultipart appends one reply to its request; the request completes
// with the last reply (no OFPMPF_REPLY_MORE).
func (c *Conn) handleMultipart(xid uint32, b []byte) {
	part, err := parseMultipartReply(b)
	c.mu.Lock()
	cl := c.calls[xid]
	if cl == nil || !cl.multipart {
		c.mu.Unlock()
		if cl == nil && c.handleFlowUpdates(b) {
			return // asynchronous flow monitor updates (xid 0)
		}
		c.complete(xid, b, nil)
		return
	}
	if err == nil {
		cl.parts = append(cl.parts, b)
		if part.More() {
			c.mu.Unlock()
			select {
			case cl.arrived <- struct{}{}: // the waiter takes the replies so far
			default:
			}
			return
		}
	}
	c.mu.Unlock()
	c.complete(xid, nil, err)
}

func (c *Conn) handlePortStatus(b []byte) {
	ps, err := parsePortStatus(b)
	if err != nil {
		c.log.Warn("openflow: undecodable port status from switch", "err", err)
		return
	}
	c.log.Debug("openflow: port status", "reason", ps.ReasonName(), "port", ps.Port.No, "name", ps.Port.Name)
	c.ports.publish(ps)
	if c.cfg.portStatusSink != nil {
		c.cfg.portStatusSink(ps)
	}
}

// errCallFailed wraps a failed request with its description (which names
// its xid).
func errCallFailed(what string, err error) error { return wrap(err, "%s", what) }
