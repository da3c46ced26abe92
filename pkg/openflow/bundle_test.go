package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// fakeBundles plays the switch side of ONF bundles: it answers control
// requests, rejects bundled flow_mods of priority badAddPrio at add time
// and fails the commit when a flow_mod of priority badCommitPrio was added
// (as Open vSwitch does: the message's error first, then OFPBFC_MSG_FAILED).
type fakeBundles struct {
	badAddPrio, badCommitPrio uint16
	openErr                   bool          // refuse the open request (OFPBFC_BAD_ID)
	holdOpen                  chan struct{} // if set, answer the open request once it is closed

	mu      sync.Mutex
	ctrl    []uint16 // control types received, in order
	adds    [][]byte // bundle add messages received
	pending map[uint32][]byte
}

func (f *fakeBundles) handle(ss *sw.Session, b []byte) bool {
	if b[1] != typeExperimenter || len(b) < 24 || binary.BigEndian.Uint32(b[8:12]) != onfExperimenter {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch binary.BigEndian.Uint32(b[12:16]) {
	case expBundleAdd:
		f.adds = append(f.adds, b)
		inner := b[24:]
		if binary.BigEndian.Uint16(inner[30:32]) == f.badAddPrio {
			_ = ss.Send(sw.Error(xidOf(b), openflow13.PET_BAD_MATCH, openflow13.BMC_BAD_PREREQ, b))
			return true
		}
		f.pending[xidOf(b)] = inner
	case expBundleCtrl:
		typ := binary.BigEndian.Uint16(b[20:22])
		f.ctrl = append(f.ctrl, typ)
		if typ == openflow13.OFPBCT_OPEN_REQUEST {
			if f.holdOpen != nil {
				f.mu.Unlock()
				<-f.holdOpen
				f.mu.Lock()
			}
			if f.openErr {
				_ = ss.Send(sw.ExperimenterError(xidOf(b), onfBundleCodeBase+2, onfExperimenter, b))
				return true
			}
		}
		if typ == openflow13.OFPBCT_COMMIT_REQUEST {
			for xid, inner := range f.pending {
				if binary.BigEndian.Uint16(inner[30:32]) == f.badCommitPrio {
					_ = ss.Send(sw.Error(xid, openflow13.ET_FLOW_MOD_FAILED, openflow13.FMFC_OVERLAP, inner))
					_ = ss.Send(sw.ExperimenterError(xidOf(b), openflow13.BEC_MSG_FAILD, onfExperimenter, b))
					return true
				}
			}
		}
		reply := append([]byte(nil), b...)
		binary.BigEndian.PutUint16(reply[20:22], typ+1)
		_ = ss.Send(reply)
	}
	return true
}

func TestBundle(t *testing.T) {
	tests := []struct {
		name     string
		bad      [2]uint16 // priority rejected at add, at commit
		wantCtrl []uint16
		wantOp   string
		wantErr  string // code name of the first (most specific) error
		wantPrio uint16
	}{
		{"commit", [2]uint16{}, []uint16{openflow13.OFPBCT_OPEN_REQUEST, openflow13.OFPBCT_COMMIT_REQUEST}, "", "", 0},
		{"bad message at add: discarded, not committed", [2]uint16{3, 0},
			[]uint16{openflow13.OFPBCT_OPEN_REQUEST, openflow13.OFPBCT_DISCARD_REQUEST}, "add", "OFPBMC_BAD_PREREQ", 3},
		{"bad message at commit", [2]uint16{0, 4},
			[]uint16{openflow13.OFPBCT_OPEN_REQUEST, openflow13.OFPBCT_COMMIT_REQUEST}, "commit", "OFPFMFC_OVERLAP", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeBundles{badAddPrio: tt.bad[0], badCommitPrio: tt.bad[1], pending: make(map[uint32][]byte)}
			c, _ := dialFake(t, sw.Options{Handler: fake.handle}, nil)
			b, err := c.Bundle(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			for p := range uint16(6) {
				if err := b.Add(flowMod(1, p+1, 0xb0)); err != nil { // priorities 1..6
					t.Fatal(err)
				}
			}
			err = b.Commit(testCtx(t))
			checkBundleErr(t, err, tt.wantOp, tt.wantErr, tt.wantPrio, b.ID())
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if !slices.Equal(fake.ctrl, tt.wantCtrl) {
				t.Errorf("control sequence %v, want %v", fake.ctrl, tt.wantCtrl)
			}
			for _, a := range fake.adds {
				inner := a[24:]
				if xidOf(inner) != xidOf(a) || binary.BigEndian.Uint16(a[22:24]) != uint16(BundleAtomic|BundleOrdered) ||
					binary.BigEndian.Uint32(a[16:20]) != b.ID() || binary.BigEndian.Uint16(inner[2:4]) != uint16(len(inner)) {
					t.Fatalf("bundle add %x", a)
				}
			}
			if err := b.Add(flowMod(1, 1, 1)); err == nil {
				t.Error("Add after Commit accepted")
			}
		})
	}
}

func checkBundleErr(t *testing.T, err error, op, code string, prio uint16, id uint32) {
	t.Helper()
	if op == "" {
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		return
	}
	var be *BundleError
	var oe *OFError
	if !errors.As(err, &be) || be.Op != op || be.ID != id || !errors.As(err, &oe) {
		t.Fatalf("err = %v, want a BundleError at %s", err, op)
	}
	if oe.CodeName() != code || !oe.Known || !oe.Request.InBundle || oe.Request.Priority != prio || oe.Request.BundleID != id {
		t.Fatalf("first error %v (%+v), want %s for priority %d in bundle %d", oe, oe.Request, code, prio, id)
	}
	// The messages were added with priorities 1, 2, ...: the refused one
	// is at position prio-1.
	if len(be.Refused) != 1 || be.Refused[0].Index != int(prio)-1 || be.Refused[0].Err != oe {
		t.Fatalf("refused messages %+v, want the one at position %d", be.Refused, prio-1)
	}
}

func TestBundleDiscard(t *testing.T) {
	fake := &fakeBundles{pending: make(map[uint32][]byte)}
	c, _ := dialFake(t, sw.Options{Handler: fake.handle}, nil)
	b, err := c.OpenBundle(context.Background(), BundleOrdered)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(flowMod(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Discard(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(testCtx(t)); err == nil {
		t.Fatal("commit after discard accepted")
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !slices.Equal(fake.ctrl, []uint16{openflow13.OFPBCT_OPEN_REQUEST, openflow13.OFPBCT_DISCARD_REQUEST}) {
		t.Fatalf("control sequence %v", fake.ctrl)
	}
	if binary.BigEndian.Uint16(fake.adds[0][22:24]) != uint16(BundleOrdered) {
		t.Fatalf("flags of %x", fake.adds[0])
	}
}

// TestBundleOpenPipelined: Bundle does not wait for the open reply (one
// round trip less); a refused open fails the Commit, which discards.
func TestBundleOpenPipelined(t *testing.T) {
	for _, refused := range []bool{false, true} {
		fake := &fakeBundles{openErr: refused, holdOpen: make(chan struct{}), pending: make(map[uint32][]byte)}
		c, _ := dialFake(t, sw.Options{Handler: fake.handle}, nil)
		var b *Bundle
		opened := make(chan error, 1)
		go func() {
			var err error
			b, err = c.Bundle(testCtx(t))
			opened <- err
		}()
		select { // the switch withholds the open reply until released
		case err := <-opened:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			close(fake.holdOpen)
			t.Fatal("Bundle waited for the open reply")
		}
		close(fake.holdOpen)
		if err := b.Add(flowMod(1, 1, 0xb0)); err != nil {
			t.Fatal(err)
		}
		err := b.Commit(testCtx(t))
		want := []uint16{openflow13.OFPBCT_OPEN_REQUEST, openflow13.OFPBCT_COMMIT_REQUEST}
		var be *BundleError
		if refused {
			want[1] = openflow13.OFPBCT_DISCARD_REQUEST
			if !errors.As(err, &be) || be.Op != "open" || !errors.Is(err, &OFError{Type: 0xffff, Code: onfBundleCodeBase + 2, Experimenter: onfExperimenter}) {
				t.Fatalf("refused open: Commit err = %v", err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		fake.mu.Lock()
		if !slices.Equal(fake.ctrl, want) {
			t.Errorf("refused %v: control sequence %v, want %v", refused, fake.ctrl, want)
		}
		fake.mu.Unlock()
	}
}

// TestBundleErrorBeyondSentHistory: a message refused long after it was
// added (its xid no longer in the record of sent messages) still fails
// the bundle, and is named by its position.
func TestBundleErrorBeyondSentHistory(t *testing.T) {
	fake := &fakeBundles{badAddPrio: 2, pending: make(map[uint32][]byte)}
	c, _ := dialFake(t, sw.Options{Handler: fake.handle}, func(cfg *Config) { cfg.SentHistory = 4 })
	b, err := c.Bundle(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for p := range uint16(20) {
		if err := b.Add(flowMod(1, p+1, 0xb0)); err != nil { // priority 2 is refused
			t.Fatal(err)
		}
	}
	err = b.Commit(testCtx(t))
	var be *BundleError
	if !errors.As(err, &be) || be.Op != "add" || len(be.Refused) != 1 || be.Refused[0].Index != 1 {
		t.Fatalf("commit: %v, want the add at position 1 refused", err)
	}
}
