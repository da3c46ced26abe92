package main

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// ofRelay stands between the agent and Open vSwitch's OpenFlow socket and
// passes every message on, except that once armed it withholds the reply to
// the next flow-stats request (the dump a Sync starts with) until released:
// the agent's Sync then waits for OVS for as long as the test wants.
type ofRelay struct {
	addr     string // "unix:PATH" for the agent
	upstream string // OVS's socket path

	mu      sync.Mutex
	armed   bool
	holding bool
	xid     uint32        // of the flow-stats request whose reply is held
	held    chan struct{} // closed when that reply is held
	release chan struct{} // closed by Release
}

func startRelay(t *testing.T, upstream string) *ofRelay {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.mgmt")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &ofRelay{addr: "unix:" + path, upstream: strings.TrimPrefix(upstream, "unix:"),
		held: make(chan struct{}), release: make(chan struct{})}
	var wg sync.WaitGroup
	var cmu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		r.Release()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			agent, err := ln.Accept()
			if err != nil {
				return
			}
			ovs, err := net.Dial("unix", r.upstream)
			if err != nil { // no bridge yet: the agent retries
				agent.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, agent, ovs)
			cmu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); r.pipe(ovs, agent, r.toSwitch); ovs.Close() }()
			go func() { defer wg.Done(); r.pipe(agent, ovs, r.toAgent); agent.Close() }()
		}
	}()
	return r
}

// HoldNextDump arms the relay: the reply to the next flow-stats request is
// withheld (Held is closed then) until Release. A relay holds once.
func (r *ofRelay) HoldNextDump() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

// Held is closed once a dump's reply is withheld.
func (r *ofRelay) Held() <-chan struct{} { return r.held }

// Holding reports whether a reply is still withheld.
func (r *ofRelay) Holding() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holding
}

// Release lets the withheld reply and everything after it through.
func (r *ofRelay) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

// pipe copies messages from src to dst, calling see on each first.
func (r *ofRelay) pipe(dst io.Writer, src io.Reader, see func([]byte)) {
	for {
		msg, err := ofswitchtest.ReadMessage(src)
		if err != nil {
			return
		}
		see(msg)
		if _, err := dst.Write(msg); err != nil {
			return
		}
	}
}

const mpFlow = 1 // OFPMP_FLOW

// toSwitch notes the flow-stats request to hold the reply of.
func (r *ofRelay) toSwitch(msg []byte) {
	if msg[1] != ofswitchtest.TypeMultipartReq || binary.BigEndian.Uint16(msg[8:10]) != mpFlow {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.armed {
		r.armed, r.holding, r.xid = false, true, binary.BigEndian.Uint32(msg[4:8])
	}
}

// toAgent withholds the noted reply until Release.
func (r *ofRelay) toAgent(msg []byte) {
	r.mu.Lock()
	hold := r.holding && msg[1] == ofswitchtest.TypeMultipartReply && binary.BigEndian.Uint32(msg[4:8]) == r.xid
	r.mu.Unlock()
	if !hold {
		return
	}
	close(r.held)
	<-r.release
	r.mu.Lock()
	r.holding = false
	r.mu.Unlock()
}
