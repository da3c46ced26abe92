// Package flowtest is a minimal OpenFlow 1.3 client for tests: it installs
// flows through a bridge's service socket (<bridge>.mgmt) and reads them back
// with a raw flow-stats request, independent of the product's connection
// layer. It does just enough to verify encodings against a real switch.
package flowtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// OpenFlow 1.3 message types used here.
const (
	ofVersion         = 4
	typeHello         = 0
	typeError         = 1
	typeEchoRequest   = 2
	typeEchoReply     = 3
	typeMultipartReq  = 18
	typeMultipartRepl = 19
	typeBarrierReq    = 20
	typeBarrierReply  = 21
	multipartFlow     = 1
	replyMore         = 1
)

// Conn is one OpenFlow connection to a switch.
type Conn struct {
	c   net.Conn
	xid uint32
}

// Dial connects to addr ("unix:/path/br.mgmt"), exchanges HELLOs and closes
// the connection when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		t.Fatalf("flowtest: %q is not a unix: address", addr)
	}
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("flowtest: %v", err)
	}
	c := &Conn{c: nc}
	t.Cleanup(func() { _ = nc.Close() })
	if _, err := c.send(typeHello, nil); err != nil {
		t.Fatalf("flowtest: hello: %v", err)
	}
	m, err := c.read()
	if err != nil || m[1] != typeHello {
		t.Fatalf("flowtest: no HELLO from switch: %v", err)
	}
	return c
}

// send writes a message with a fresh xid and returns the xid.
func (c *Conn) send(typ uint8, body []byte) (uint32, error) {
	c.xid++
	b := make([]byte, 8+len(body))
	b[0], b[1] = ofVersion, typ
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:8], c.xid)
	copy(b[8:], body)
	_, err := c.c.Write(b)
	return c.xid, err
}

// SendMessage writes a libOpenflow message (its xid is replaced by ours).
func (c *Conn) SendMessage(m util.Message) (uint32, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if len(b) < 8 || int(binary.BigEndian.Uint16(b[2:4])) != len(b) {
		return 0, fmt.Errorf("flowtest: %T marshals to %d bytes, header says %d", m, len(b), binary.BigEndian.Uint16(b[2:4]))
	}
	return c.send(b[1], b[8:])
}

// read returns the next message, answering echo requests on the way.
func (c *Conn) read() ([]byte, error) {
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		h := make([]byte, 8)
		if _, err := io.ReadFull(c.c, h); err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(h[2:4]))
		if n < 8 {
			return nil, fmt.Errorf("flowtest: message length %d", n)
		}
		m := make([]byte, n)
		copy(m, h)
		if _, err := io.ReadFull(c.c, m[8:]); err != nil {
			return nil, err
		}
		if m[1] != typeEchoRequest {
			return m, nil
		}
		m[1] = typeEchoReply
		if _, err := c.c.Write(m); err != nil {
			return nil, err
		}
	}
}

// Barrier waits for the switch to process everything sent so far and returns
// the OFPT_ERRORs it sent meanwhile.
func (c *Conn) Barrier() error {
	xid, err := c.send(typeBarrierReq, nil)
	if err != nil {
		return err
	}
	var errs []error
	for {
		m, err := c.read()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		switch {
		case m[1] == typeError && len(m) >= 12:
			errs = append(errs, fmt.Errorf("OFPT_ERROR for xid %d: type %d code %d",
				binary.BigEndian.Uint32(m[4:8]), binary.BigEndian.Uint16(m[8:10]), binary.BigEndian.Uint16(m[10:12])))
		case m[1] == typeBarrierReply && binary.BigEndian.Uint32(m[4:8]) == xid:
			return errors.Join(errs...)
		}
	}
}

// Apply sends one flow_mod per flow with the given command, then a barrier.
func (c *Conn) Apply(cmd uint8, flows ...flow.Flow) error {
	for _, f := range flows {
		fm, err := f.FlowMod(cmd)
		if err != nil {
			return err
		}
		if _, err := c.SendMessage(fm); err != nil {
			return err
		}
	}
	return c.Barrier()
}

// Install adds the flows.
func (c *Conn) Install(flows ...flow.Flow) error { return c.Apply(openflow13.FC_ADD, flows...) }

// FlowStatsReplies requests all flows of all tables and returns the raw
// OFPT_MULTIPART_REPLY messages.
func (c *Conn) FlowStatsReplies() ([][]byte, error) {
	body := make([]byte, 8+40+8)
	binary.BigEndian.PutUint16(body[0:2], multipartFlow)
	req := body[8:]
	req[0] = 0xff                                     // all tables
	binary.BigEndian.PutUint32(req[4:8], 0xffffffff)  // out_port any
	binary.BigEndian.PutUint32(req[8:12], 0xffffffff) // out_group any
	binary.BigEndian.PutUint16(req[32:34], openflow13.MatchType_OXM)
	binary.BigEndian.PutUint16(req[34:36], 4) // empty match
	xid, err := c.send(typeMultipartReq, body)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		m, err := c.read()
		if err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint32(m[4:8]) != xid {
			continue
		}
		if m[1] != typeMultipartRepl || len(m) < 16 {
			return nil, fmt.Errorf("flowtest: flow stats request answered by type %d", m[1])
		}
		out = append(out, m)
		if binary.BigEndian.Uint16(m[10:12])&replyMore == 0 {
			return out, nil
		}
	}
}

// DumpFlows reads every flow of the switch, decoded as the agent decodes
// them (openflow's parser, then flow.FromReply).
func (c *Conn) DumpFlows() ([]flow.Stats, error) {
	replies, err := c.FlowStatsReplies()
	if err != nil {
		return nil, err
	}
	var out []flow.Stats
	for _, m := range replies { // decoded as the agent decodes them
		raw, err := openflow.ParseFlowStats(m[16:])
		if err != nil {
			return nil, err
		}
		for i := range raw {
			st, err := flow.FromReply(&raw[i])
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}
