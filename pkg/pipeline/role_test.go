package pipeline

import (
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// RoleCookie/RoleMask selects the spoof_guard drop flow of every local
// endpoint and nothing else; the role leaves category and object intact.
func TestSpoofDropRole(t *testing.T) {
	s := Reference()
	sel := RoleCookie(CategoryLocalEndpoint, RoleSpoofDrop)
	var got []flow.Flow
	for _, f := range Build(s) {
		if f.Cookie&RoleMask == sel&RoleMask {
			got = append(got, f)
		}
	}
	if len(got) != len(s.Endpoints) || len(got) == 0 {
		t.Fatalf("%d flows selected, want one per endpoint (%d):\n%s", len(got), len(s.Endpoints), flow.Dump(got))
	}
	ports := map[uint32]Endpoint{}
	for _, e := range s.Endpoints {
		ports[e.OFPort] = e
	}
	for _, f := range got {
		in, _ := f.Match.Get(flow.FieldInPort)
		port := uint32(in.Value.U64())
		e, ok := ports[port]
		if !ok || f.Table != SpoofGuard.ID() || f.Priority != priorityPortDrop || len(f.Actions) != 0 ||
			f.Match.String() != flow.NewMatch(flow.FieldInPort.Is(uint64(e.OFPort))).String() {
			t.Errorf("not an endpoint's drop flow: %s", f)
		}
		c, id, _ := ParseCookie(f.Cookie)
		if wc, wid, _ := ParseCookie(e.Cookie()); c != wc || id != wid || f.Cookie&ObjectMask != e.Cookie()&ObjectMask {
			t.Errorf("drop flow of %s: cookie %#x, endpoint cookie %#x", e.Port, f.Cookie, e.Cookie())
		}
		delete(ports, port)
	}
}

func TestWithRole(t *testing.T) {
	c := Cookie(CategoryLocalEndpoint, 0xdeadbeef)
	tests := []struct {
		in   uint64
		role Role
		want uint64
	}{
		{c, RoleSpoofDrop, 0xfca0_0301_dead_beef},
		{WithRole(c, 0x7f), RoleSpoofDrop, 0xfca0_0301_dead_beef},
		{WithRole(c, RoleSpoofDrop), RoleNone, c},
	}
	for _, tt := range tests {
		if got := WithRole(tt.in, tt.role); got != tt.want {
			t.Errorf("WithRole(%#x, %d) = %#x, want %#x", tt.in, tt.role, got, tt.want)
		}
	}
}
