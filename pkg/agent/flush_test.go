package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// TestFlushWaitsForTheFirstSync: on a connection whose first Sync has not
// completed, the agent must not flush: the reconciler does not know what
// OVS holds yet and would send every desired flow as an add (found as a
// restart re-sending 50,009 flows when an event arrived in that window).
func TestFlushWaitsForTheFirstSync(t *testing.T) {
	sw := ofswitchtest.Start(t, ofswitchtest.Options{})
	a, err := New(Config{NodeName: "ha", OVSDB: "unix:" + filepath.Join(t.TempDir(), "none.sock"), OpenFlow: sw.Addr(),
		TunnelPort: "gre0", Cluster: staticSource(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: sw.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ss, err := sw.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if errs := a.rec.Set("fixed", pipeline.FixedFlows(100)); len(errs) > 0 {
		t.Fatal(errs)
	}

	a.conn.Store(c) // connected, its Sync not done
	if n := a.flush(ctx); n != 0 {
		t.Fatalf("flush before the first Sync sent %d flow_mods", n)
	}
	quiet, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	for { // the handshake's set-config may come; a bundle or flow_mod must not
		msg, err := ss.Recv(quiet)
		if err != nil {
			break
		}
		if msg[1] == 4 || msg[1] == 14 {
			t.Fatalf("the switch got a message from a flush before the first Sync: % x", msg)
		}
	}
	stop()

	a.synced.Store(c) // the Sync is done: now a flush goes out
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	go a.flush(short) // the fake switch does not answer bundles: it times out
	msg, err := ss.Recv(ctx)
	if err != nil {
		t.Fatalf("flush after the first Sync sent nothing: %v", err)
	}
	if msg[1] != 4 { // OFPT_EXPERIMENTER: the ONF bundle control (open)
		t.Fatalf("flush after the first Sync sent message type %d, want a bundle (experimenter)", msg[1])
	}
}
