package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// The snapshot (Client.Preload): one read of the bridge's ports and
// interfaces, for a start that cannot wait for libovsdb's monitor. At
// 10,000 interfaces libovsdb decodes its initial monitor reply through
// interface{} values and fills its cache by reflection: 0.5-0.6 s of CPU
// after ovsdb-server's own 0.3 s. The snapshot asks for the same rows and
// columns in one transaction (a consistent read) on a connection of its
// own and decodes them straight into the rows the client indexes
// (atoms.go), so that the interfaces are known (Synced) before libovsdb's
// connection is made; its first full read then publishes only what changed
// meanwhile.

// snapshotTimeout bounds the snapshot (it is an optimisation: on failure
// the client waits for libovsdb as before).
const snapshotTimeout = 10 * time.Second

// snapshotTxn selects, in one transaction, the columns of the tables that
// decide which interfaces are on a bridge, as the monitor reads them, and
// the root row's other_config (flow-restore-wait).
const snapshotTxn = `{"id":1,"method":"transact","params":["Open_vSwitch",` +
	`{"op":"select","table":"Bridge","where":[],"columns":["_uuid","name","ports"]},` +
	`{"op":"select","table":"Port","where":[],"columns":["_uuid","name","interfaces"]},` +
	`{"op":"select","table":"Interface","where":[],"columns":["_uuid","name","type","options","external_ids",` +
	`"ofport","ofport_request","mtu_request","mac_in_use","error"]},` +
	`{"op":"select","table":"Open_vSwitch","where":[],"columns":["_uuid","other_config"]}]}`

// readSnapshot reads the Bridge, Port and Interface rows from the server
// at endpoint ("unix:PATH" or "tcp:HOST:PORT") on a connection of its own.
func readSnapshot(ctx context.Context, endpoint string) (rows, error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	network, addr, _ := strings.Cut(endpoint, ":")
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return rows{}, fmt.Errorf("ovsdb snapshot: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write([]byte(snapshotTxn)); err != nil {
		return rows{}, fmt.Errorf("ovsdb snapshot: %w", err)
	}
	f := framer{r: conn, buf: make([]byte, 0, 1<<20)}
	for {
		msg, err := f.next()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return rows{}, fmt.Errorf("ovsdb snapshot: %w", err)
		}
		r, ours, err := parseSnapshot(msg)
		if err != nil {
			return rows{}, fmt.Errorf("ovsdb snapshot: %w", err)
		}
		if ours {
			return r, nil
		}
		// A request of the server's (an echo): not the answer.
	}
}

// framer splits a stream of JSON-RPC messages (objects sent back to back)
// by counting brackets outside strings: one light pass over the bytes,
// where a json.Decoder scans each value twice.
type framer struct {
	r            io.Reader
	buf          []byte
	start, at    int // the current message starts at start; scanned up to at
	depth        int
	inStr, escap bool
}

// next returns the next message. It is valid until the next call.
func (f *framer) next() ([]byte, error) {
	for {
		for ; f.at < len(f.buf); f.at++ {
			c := f.buf[f.at]
			switch {
			case f.inStr:
				switch {
				case f.escap:
					f.escap = false
				case c == '\\':
					f.escap = true
				case c == '"':
					f.inStr = false
				}
			case c == '"':
				f.inStr = true
			case c == '{' || c == '[':
				f.depth++
			case c == '}' || c == ']':
				if f.depth--; f.depth == 0 {
					msg := f.buf[f.start : f.at+1]
					f.at++
					f.start = f.at
					return msg, nil
				}
			}
		}
		if len(f.buf) == cap(f.buf) {
			f.buf = slices.Grow(f.buf, cap(f.buf))
		}
		n, err := f.r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+n]
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// parseSnapshot reads one JSON-RPC message; ours is set when it is the
// answer to snapshotTxn (id 1), whose four results are the Bridge, Port,
// Interface and Open_vSwitch rows.
func parseSnapshot(b []byte) (r rows, ours bool, err error) {
	p := atomParser{b: b}
	var id, rpcErr []byte
	var opErr string
	err = p.object(func(key string) error {
		var err error
		switch key {
		case "id":
			id, err = p.skip()
		case "error":
			rpcErr, err = p.skip()
		case "result":
			if p.peek() == 'n' { // null
				_, err = p.skip()
				return err
			}
			n := 0
			err = p.array(func() error {
				n++
				return p.object(func(key string) error {
					switch {
					case key == "rows" && n == 1:
						return p.array(func() error { return p.bridgeRow(&r) })
					case key == "rows" && n == 2:
						return p.array(func() error { return p.portRow(&r) })
					case key == "rows" && n == 3:
						return p.array(func() error { return p.ifaceRow(&r) })
					case key == "rows" && n == 4:
						return p.array(func() error { return p.rootRow(&r) })
					case key == "error" || key == "details":
						s, err := p.str()
						opErr += s + " "
						return err
					}
					_, err := p.skip()
					return err
				})
			})
		default:
			_, err = p.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return rows{}, false, err
	case string(id) != "1":
		return rows{}, false, nil
	case len(rpcErr) > 0 && string(rpcErr) != "null":
		return rows{}, true, fmt.Errorf("server error %s", rpcErr)
	case opErr != "":
		return rows{}, true, fmt.Errorf("select: %s", strings.TrimSpace(opErr))
	}
	return r, true, p.end()
}

// bridgeRow reads a Bridge row into r.
func (p *atomParser) bridgeRow(r *rows) error {
	var row bridgeRow
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "_uuid":
			row.UUID, err = p.uuid()
		case "name":
			row.Name, err = p.str()
		case "ports":
			row.Ports, err = p.uuidSet()
		default:
			_, err = p.skip()
		}
		return err
	})
	r.bridges = append(r.bridges, row)
	return err
}

// portRow reads a Port row into r.
func (p *atomParser) portRow(r *rows) error {
	var row portRow
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "_uuid":
			row.UUID, err = p.uuid()
		case "name":
			row.Name, err = p.str()
		case "interfaces":
			row.Interfaces, err = p.uuidSet()
		default:
			_, err = p.skip()
		}
		return err
	})
	r.ports = append(r.ports, row)
	return err
}

// ifaceRow reads an Interface row into r.
func (p *atomParser) ifaceRow(r *rows) error {
	var row ifaceRow
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "_uuid":
			row.UUID, err = p.uuid()
		case "name":
			row.Name, err = p.str()
		case "type":
			row.Type, err = p.str()
		case "options":
			row.Options, err = p.stringMap()
		case "external_ids":
			row.ExternalIDs, err = p.stringMap()
		case "ofport":
			row.OFPort, err = p.optInt()
		case "ofport_request":
			row.OFPortRequest, err = p.optInt()
		case "mtu_request":
			row.MTURequest, err = p.optInt()
		case "mac_in_use":
			row.MACInUse, err = p.optString()
		case "error":
			row.Error, err = p.optString()
		default:
			_, err = p.skip()
		}
		if err != nil {
			return fmt.Errorf("interface %q column %s: %w", row.Name, key, err)
		}
		return nil
	})
	r.ifaces = append(r.ifaces, row)
	return err
}

// rootRow reads the Open_vSwitch row into r.
func (p *atomParser) rootRow(r *rows) error {
	var row ovsRow
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "_uuid":
			row.UUID, err = p.uuid()
		case "other_config":
			row.OtherConfig, err = p.stringMap()
		default:
			_, err = p.skip()
		}
		return err
	})
	r.root = append(r.root, row)
	return err
}
