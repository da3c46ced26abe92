package openflow

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// Error messages name the package once and the address once, however many
// layers wrap them ("openflow: bundle 3: openflow: ... xid=7: openflow:
// connection closed" said it three times).
func TestErrorsSayItOnce(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "none.mgmt")
	_, dialErr := Dial(ctx, Config{Addr: "unix:" + missing, Logger: quiet()})
	hangUp := filepath.Join(t.TempDir(), "hangup.mgmt") // accepts, then closes at once
	ln, err := net.Listen("unix", hangUp)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Close()
		}
	}()
	_, handshakeErr := Dial(ctx, Config{Addr: "unix:" + hangUp, Logger: quiet()})

	c, _ := dialFake(t, sw.Options{}, nil)
	b, err := c.OpenBundle(ctx, BundleOrdered)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	_, statsErr := c.FlowStats(ctx, FlowStatsFilter{TableID: AllTables})
	barrierErr := c.Barrier(ctx)
	addErr := b.Add(openflow13.NewFlowMod())
	c2, _ := dialFake(t, sw.Options{}, nil)
	b2, err := c2.OpenBundle(ctx, BundleOrdered)
	if err != nil {
		t.Fatal(err)
	}
	_ = c2.Close()
	commitErr := b2.Commit(ctx)

	for name, err := range map[string]error{"dial": dialErr, "handshake": handshakeErr, "flow stats": statsErr, "barrier": barrierErr,
		"bundle add": addErr, "bundle commit": commitErr} {
		if err == nil {
			t.Errorf("%s on a closed connection succeeded", name)
			continue
		}
		if n := strings.Count(err.Error(), "openflow: "); n != 1 || !strings.HasPrefix(err.Error(), "openflow: ") {
			t.Errorf("%s: %q names openflow %d times, want once in front", name, err, n)
		}
		t.Logf("%s: %v", name, err)
		if name != "dial" && name != "handshake" && !errors.Is(err, ErrClosed) {
			t.Errorf("%s: %q is not ErrClosed", name, err)
		}
	}
	if n := strings.Count(dialErr.Error(), missing); n != 1 {
		t.Errorf("dial: %q names the socket %d times", dialErr, n)
	}
}
