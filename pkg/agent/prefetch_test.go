package agent

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// TestFirstSyncUsesThePrefetchedDump: on the connection made while the
// model loads, prefetch dumps the flows at once and returns only once the
// model is loaded; the first Sync then compares with that dump (no second
// flow-stats request) and covers only drift reported before the dump
// started; the next Sync asks OVS again, and a later connection does not
// prefetch.
func TestFirstSyncUsesThePrefetchedDump(t *testing.T) {
	const multipartRequest = 18
	var dumps atomic.Int32
	sw := ofswitchtest.Start(t, ofswitchtest.Options{Handler: func(ss *ofswitchtest.Session, b []byte) bool {
		if b[1] != multipartRequest {
			return false
		}
		dumps.Add(1)
		// One flow of a table beyond the agent's: ignored, nothing to send.
		_ = ss.Send(ofswitchtest.MultipartReply(binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint16(b[8:10]), false,
			ofswitchtest.FlowStatsEntry(250, 1, 0x77, 0)))
		return true
	}})
	a, err := New(Config{NodeName: "ha", OVSDB: "unix:" + filepath.Join(t.TempDir(), "none.sock"), OpenFlow: sw.Addr(),
		TunnelPort: "gre0", Cluster: staticSource(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: sw.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.conn.Store(c)

	before := time.Now()
	done := make(chan error, 1)
	go func() { done <- a.prefetch(ctx, c) }()
	for dumps.Load() == 0 { // dumped before the model is there
		if ctx.Err() != nil {
			t.Fatal("prefetch sent no flow dump")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("prefetch returned (%v) before the model was loaded", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(a.loaded)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p := a.pre.Load()
	if p == nil || p.conn != c || p.start.Before(before) || p.index == nil || p.index.Len() != 0 { // table 250 is not ours
		t.Fatalf("prefetched: %+v", p)
	}
	if got := a.dumpStart(); !got.Equal(p.start) {
		t.Fatalf("the first Sync's dump starts at %v, want the prefetch's %v", got, p.start)
	}
	if _, err := a.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := dumps.Load(); n != 1 {
		t.Fatalf("the first Sync asked OVS again: %d dumps", n)
	}
	if a.pre.Load() != nil || !a.drift.covered.Equal(p.start) {
		t.Fatalf("after the first Sync: prefetched %v, drift covered up to %v (want the dump's start %v)", a.pre.Load(), a.drift.covered, p.start)
	}
	if _, err := a.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := dumps.Load(); n != 2 {
		t.Fatalf("the second Sync did not dump: %d dumps", n)
	}
	if err := a.prefetch(ctx, c); err != nil || dumps.Load() != 2 || a.pre.Load() != nil {
		t.Fatalf("prefetch once the model is loaded: %v, %d dumps, prefetched %v", err, dumps.Load(), a.pre.Load())
	}
}
