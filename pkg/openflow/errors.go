package openflow

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrClosed: the connection was closed by Close.
	ErrClosed = errors.New("openflow: connection closed")
	// ErrDeadPeer: the switch sent nothing (not even an echo reply) within
	// Config.DeadInterval.
	ErrDeadPeer = errors.New("openflow: dead peer")
	// ErrMalformed: bytes from the switch could not be decoded.
	ErrMalformed = errors.New("openflow: malformed message from switch")
	// ErrPeerClosed: the switch closed the connection.
	ErrPeerClosed = errors.New("openflow: connection closed by switch")
)

// OFError is an OFPT_ERROR sent by the switch. Request names the message
// that failed when the connection still remembered it (see
// Config.SentHistory), otherwise it is decoded from the start of the failing
// message that the switch echoes in Data.
type OFError struct {
	Type         uint16 // ofp_error_type; 0xffff for experimenter errors
	Code         uint16 // code, or experimenter code when Type is 0xffff
	Experimenter uint32 // experimenter ID of an experimenter error
	Xid          uint32 // xid of the error = xid of the failing message
	Data         []byte // start of the failing message, as echoed by the switch
	Request      SentMessage
	Known        bool // Request came from the connection's record of sent messages
}

// TypeName is the name of the error type, e.g. "OFPET_BAD_MATCH".
func (e *OFError) TypeName() string { return ErrTypeName(e.Type) }

// CodeName is the name of the error code, e.g. "OFPBMC_BAD_FIELD".
func (e *OFError) CodeName() string { return ErrCodeName(e.Type, e.Code, e.Experimenter) }

// Error renders "openflow: switch rejected OFPT_FLOW_MOD(add ...) xid=5: OFPET_BAD_MATCH/OFPBMC_BAD_FIELD".
func (e *OFError) Error() string {
	return fmt.Sprintf("openflow: switch rejected %s: %s/%s (type=%d code=%d)",
		e.Request, e.TypeName(), e.CodeName(), e.Type, e.Code)
}

// Is reports whether target is an *OFError with the same type, code and
// experimenter, so callers can write errors.Is(err, &OFError{Type: 4, Code: 6}).
func (e *OFError) Is(target error) bool {
	t, ok := target.(*OFError)
	return ok && t.Type == e.Type && t.Code == e.Code && t.Experimenter == e.Experimenter
}

// IsBundleError reports whether e is an ONF bundle error with the given
// OFPBFC_* code (2300..2315).
func (e *OFError) IsBundleError(code uint16) bool {
	return e.Type == 0xffff && e.Experimenter == onfExperimenter && e.Code == code
}

// VersionError: the switch does not speak OpenFlow 1.3.
type VersionError struct {
	PeerVersion uint8    // version in the switch's HELLO header
	PeerBitmap  []uint32 // version bitmap of the switch's HELLO, if any
	Rejected    bool     // the switch refused our HELLO with OFPET_HELLO_FAILED
}

func (e *VersionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "openflow: switch does not support OpenFlow 1.3: it speaks %s", versionName(e.PeerVersion))
	if len(e.PeerBitmap) > 0 {
		fmt.Fprintf(&b, " (version bitmap %#x)", e.PeerBitmap)
	}
	if e.Rejected {
		b.WriteString(", and rejected our hello")
	}
	return b.String()
}

func versionName(v uint8) string {
	names := map[uint8]string{1: "OpenFlow 1.0", 2: "OpenFlow 1.1", 3: "OpenFlow 1.2",
		4: "OpenFlow 1.3", 5: "OpenFlow 1.4", 6: "OpenFlow 1.5"}
	if n, ok := names[v]; ok {
		return fmt.Sprintf("%s (version %#02x)", n, v)
	}
	return fmt.Sprintf("unknown OpenFlow version %#02x", v)
}

// BundleError: a bundle failed and changed nothing on the switch. Errs
// holds the errors of the failing messages first (each an *OFError naming
// the bundled message), then the error of the bundle control request
// (e.g. OFPBFC_MSG_FAILED on commit), so errors.As finds the most specific.
type BundleError struct {
	ID   uint32
	Op   string // "add", "commit"
	Errs []error
	// Refused are the errors of Errs that name a message of the bundle,
	// with its position: what a caller needs to leave the message out and
	// send the rest again.
	Refused []RefusedMessage
}

// RefusedMessage is a bundled message the switch refused.
type RefusedMessage struct {
	Index int // position among the bundle's messages, in Add order (0-based)
	Err   *OFError
}

func (e *BundleError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = strings.TrimPrefix(err.Error(), prefix)
	}
	return fmt.Sprintf("openflow: bundle %d failed at %s, nothing applied: %s", e.ID, e.Op, strings.Join(msgs, "; "))
}

// Unwrap returns the joined errors for errors.Is and errors.As.
func (e *BundleError) Unwrap() []error { return e.Errs }

// prefix starts every error of the package, once.
const prefix = "openflow: "

// wrapped is an error of the package wrapped with context: its text names
// the package once, in front, whatever the wrapped error says.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string {
	return prefix + w.msg + ": " + strings.TrimPrefix(w.err.Error(), prefix)
}

func (w *wrapped) Unwrap() error { return w.err }

// wrap adds context to err (see wrapped).
func wrap(err error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: err}
}

// malformed wraps ErrMalformed with a description.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
