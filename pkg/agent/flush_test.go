package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
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

// TestVerifyWaitsForTheFirstSync: the periodic drift check must not run a
// full Sync on a connection whose first Sync (onConnect's) has not
// completed: it raced onConnect after every reconnection and logged the
// restored pipeline as "repaired drift" (found as a
// TestAgentClearsFlowRestoreWait failure: the connection's own Sync then
// kept 17 flows instead of adding them). Messages on a connection arrive in
// order: a get-config request sent after the check marks the end of what the
// check sent.
func TestVerifyWaitsForTheFirstSync(t *testing.T) {
	sw := ofswitchtest.Start(t, ofswitchtest.Options{})
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
	ss, err := sw.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if errs := a.rec.Set("fixed", pipeline.FixedFlows(100)); len(errs) > 0 {
		t.Fatal(errs)
	}
	const multipartRequest, getConfigRequest = 18, 7
	// sentBy runs check, then marks the connection with a get-config request and
	// reports whether the switch got a flow dump (multipart request) before it.
	sentBy := func(check func()) bool {
		check()
		marker := openflow13.NewEchoRequest() // as a message the fake switch does not answer itself
		marker.Type = getConfigRequest
		if _, err := c.Send(marker); err != nil {
			t.Fatal(err)
		}
		dumped := false
		for {
			msg, err := ss.Recv(ctx)
			if err != nil {
				t.Fatalf("the marker never arrived: %v", err)
			}
			switch msg[1] {
			case multipartRequest:
				dumped = true
			case getConfigRequest:
				return dumped
			}
		}
	}
	a.conn.Store(c) // connected, its first Sync not done
	if sentBy(func() {
		short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
		defer stop()
		a.verify(short) // the fake switch never answers: a Sync would wait this out
	}) {
		t.Fatal("the drift check dumped flows on a connection before its first Sync")
	}
	a.synced.Store(c) // the first Sync is done: the check compares (positive control)
	if !sentBy(func() {
		short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
		defer stop()
		a.verify(short)
	}) {
		t.Fatal("the drift check after the first Sync dumped no flows")
	}
}
