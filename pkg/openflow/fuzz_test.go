package openflow

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// The fuzz targets below feed arbitrary bytes from "the switch" to every
// decoder; the seeds are real messages captured from Open vSwitch 3.1
// (testdata/ovs). The property: no panic, no hang, and errors from bad
// input wrap ErrMalformed (or are I/O errors for the framing reader).

func addOVSSeeds(f *testing.F) {
	for _, b := range ovsMsgs(f) {
		f.Add(b)
	}
}

func FuzzReadFrame(f *testing.F) {
	addOVSSeeds(f)
	f.Add([]byte{4, 0, 0, 3, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			b, err := readFrame(r)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if _, err := parseHeader(b); err != nil {
				t.Fatalf("framed message with inconsistent header: %v", err)
			}
		}
	})
}

func FuzzHello(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if v, bm, err := parseHello(in); err == nil {
			_ = negotiate(v, bm)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := decodeMessage(in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		_ = describe(in).String()
	})
}

func FuzzError(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := parseError(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		_ = e.Error()
	})
}

func FuzzPortStatus(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := parsePortStatus(in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func FuzzMultipartReply(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := parseMultipartReply(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
		}
		// Every body decoder on every body, whatever the announced type.
		_, err = parseFlowStats(p.Body, true)
		check(err)
		_, err = parsePortStats(p.Body)
		check(err)
		_, err = parsePortDesc(p.Body)
		check(err)
	})
}

func FuzzOtherDecoders(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, err := range []error{
			func() error { _, err := parseFeatures(in); return err }(),
			func() error { _, err := parseBundleCtrl(in); return err }(),
		} {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
		}
	})
}

// FuzzFlowMonitor decodes flow monitor updates and pause signals, and runs
// the reader path with a monitor started.
func FuzzFlowMonitor(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
		}
		_, err := parseFlowUpdates(in)
		check(err)
		_, _, err = pauseSignal(in)
		check(err)
		if p, err := parseMultipartReply(in); err == nil {
			_, _, err = flowMonitorPart(p.Body)
			check(err)
		}
		c := fuzzConn()
		m := c.monitors.add(c, 4)
		defer m.halt()
		check(dispatchAll(c, in))
	})
}

// dispatchAll frames in and dispatches every message until the framing
// ends; it returns the error that ended the connection, if any.
func dispatchAll(c *Conn, in []byte) error {
	r := bytes.NewReader(in)
	for {
		b, err := readFrame(r)
		if err != nil {
			return nil
		}
		if err := c.dispatch(b); err != nil {
			return err
		}
	}
}

// FuzzConnReader runs the connection's reader path (framing + dispatch,
// with requests waiting on xids 1-3) over arbitrary bytes.
func FuzzConnReader(f *testing.F) {
	addOVSSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := fuzzConn()
		for xid, cl := range map[uint32]*call{1: {multipart: true}, 2: {claim: func(*OFError, bool) bool { return true }}, 3: {}} {
			cl.done = make(chan struct{})
			c.calls[xid] = cl
		}
		sub := c.SubscribePortStatus(1)
		defer sub.Close()
		if err := dispatchAll(c, in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

// fuzzConn is a Conn without goroutines whose writer only buffers.
func fuzzConn() *Conn {
	cfg, _ := Config{Addr: "unix:/fuzz", Logger: slog.New(slog.DiscardHandler)}.withDefaults()
	cfg.SentHistory = 16
	a, _ := net.Pipe()
	return &Conn{
		cfg: cfg, log: cfg.Logger, nc: a, w: newWriter(a, 1<<20, time.Second),
		calls: make(map[uint32]*call), sent: newSentRing(16), ports: newHub(),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
}
