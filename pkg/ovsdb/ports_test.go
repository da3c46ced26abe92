package ovsdb

import (
	"context"
	"errors"
	"testing"

	"github.com/ovn-org/libovsdb/ovsdb"
)

// TestWhenCacheCaughtUp: a write refused with a constraint violation (our
// cache had not seen another client's new row yet) is decided again; one
// that keeps failing is a port conflict; other errors are not retried.
func TestWhenCacheCaughtUp(t *testing.T) {
	violation := ovsdb.NewConstraintViolation("identical values (x0) for index on column \"name\"")
	other := errors.New("connection lost")
	tests := []struct {
		name      string
		results   []error // what f returns, call by call (then nil)
		wantCalls int
		want      error // errors.Is target; nil: success
	}{
		{"success at once", nil, 1, nil},
		{"cache catches up", []error{violation, violation}, 3, nil},
		{"the cache then shows the conflict", []error{violation, ErrPortConflict}, 2, ErrPortConflict},
		{"never catches up", []error{violation, violation, violation, violation, violation, violation}, 5, ErrPortConflict},
		{"other errors are not retried", []error{other}, 1, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := whenCacheCaughtUp(context.Background(), func() error {
				calls++
				if calls <= len(tt.results) {
					return tt.results[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls || (tt.want == nil) != (err == nil) || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("%d calls, err %v; want %d calls, err %v", calls, err, tt.wantCalls, tt.want)
			}
		})
	}
}
