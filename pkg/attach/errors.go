package attach

import (
	"errors"
	"fmt"
)

// Sentinel errors for errors.Is.
var (
	// ErrNotAttached: Detach found neither a port nor a veth for the interface.
	ErrNotAttached = errors.New("not attached")
	// ErrIncomplete: a port of ours exists but its veth or container
	// interface is gone (the container died, or an earlier run crashed).
	ErrIncomplete = errors.New("attachment incomplete")
	// ErrInUse: a name Attach needs is taken by something it did not make.
	ErrInUse = errors.New("already in use")
)

// DuplicateError refuses an IP or MAC that another port holds in the network.
type DuplicateError struct {
	What    string // "ip" or "mac"
	Value   string
	Network string
	HeldBy  string // the port holding it
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s %s is already used in network %s by port %s", e.What, e.Value, e.Network, e.HeldBy)
}

// MismatchError refuses to attach an interface that is already attached with
// different settings.
type MismatchError struct {
	Port, Field, Have, Want string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("already attached as port %s with %s %s, not %s: detach it first to change it",
		e.Port, e.Field, e.Have, e.Want)
}

// StepError is a failed Attach: the step that failed and, if undoing the
// earlier steps failed too, what is left behind.
type StepError struct {
	Step     string
	Err      error
	Rollback error // nil when everything was undone
}

func (e *StepError) Error() string {
	if e.Rollback != nil {
		return fmt.Sprintf("%s: %v (rollback incomplete: %v)", e.Step, e.Err, e.Rollback)
	}
	return fmt.Sprintf("%s: %v (rolled back)", e.Step, e.Err)
}

func (e *StepError) Unwrap() []error {
	if e.Rollback == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Rollback}
}
