package debugapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxUnixctlReply bounds a unixctl reply (an ofproto/trace is a few KiB).
const maxUnixctlReply = 8 << 20

// UnixctlError is an error reply of an OVS daemon to a unixctl command
// (an unknown command, a flow it cannot parse, ...).
type UnixctlError struct {
	Method  string
	Message string
}

func (e *UnixctlError) Error() string {
	return fmt.Sprintf("unixctl %s: %s", e.Method, strings.TrimSpace(e.Message))
}

// Unixctl calls commands on an OVS daemon's unixctl socket, as ovs-appctl
// does: one JSON-RPC 1.0 request per connection, {"id", "method",
// "params": [strings]}, answered by {"id", "result", "error"} where one of
// result and error is a string and the other null.
type Unixctl struct {
	// Path of the socket, or a function giving it (re-read on each call:
	// the pid in the default name changes when ovs-vswitchd restarts).
	Path    func() (string, error)
	Timeout time.Duration // per call; default 10s
}

type unixctlRequest struct {
	ID     int      `json:"id"`
	Method string   `json:"method"`
	Params []string `json:"params"`
}

type unixctlReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// Call runs method with params and returns the daemon's text answer.
func (u Unixctl) Call(ctx context.Context, method string, params ...string) (string, error) {
	if u.Path == nil {
		return "", errors.New("unixctl: no socket configured")
	}
	path, err := u.Path()
	if err != nil {
		return "", fmt.Errorf("unixctl: %w", err)
	}
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", fmt.Errorf("unixctl: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if params == nil {
		params = []string{}
	}
	if err := json.NewEncoder(conn).Encode(unixctlRequest{ID: 0, Method: method, Params: params}); err != nil {
		return "", fmt.Errorf("unixctl %s: send: %w", method, err)
	}
	return readReply(io.LimitReader(conn, maxUnixctlReply), method)
}

// readReply decodes one reply; the daemon sends a bare JSON object.
func readReply(r io.Reader, method string) (string, error) {
	var rep unixctlReply
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return "", fmt.Errorf("unixctl %s: bad reply: %w", method, err)
	}
	if string(rep.ID) != "0" {
		return "", fmt.Errorf("unixctl %s: reply id %s, want 0", method, rep.ID)
	}
	if msg, ok := jsonString(rep.Error); ok {
		return "", &UnixctlError{Method: method, Message: msg}
	}
	if !isNull(rep.Error) {
		return "", &UnixctlError{Method: method, Message: string(rep.Error)}
	}
	res, ok := jsonString(rep.Result)
	if !ok && !isNull(rep.Result) {
		return "", fmt.Errorf("unixctl %s: result is not a string: %.80s", method, rep.Result)
	}
	return res, nil
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

func jsonString(m json.RawMessage) (string, bool) {
	var s string
	if isNull(m) || json.Unmarshal(m, &s) != nil {
		return "", false
	}
	return s, true
}

// VswitchdCtl is the default unixctl socket of ovs-vswitchd in rundir:
// <rundir>/ovs-vswitchd.<pid>.ctl, the pid read from
// <rundir>/ovs-vswitchd.pid.
func VswitchdCtl(rundir string) (string, error) {
	pidfile := filepath.Join(rundir, "ovs-vswitchd.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return "", fmt.Errorf("ovs-vswitchd control socket: %w (set --vswitchd-ctl)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("ovs-vswitchd control socket: %s holds %q, not a pid", pidfile, strings.TrimSpace(string(b)))
	}
	return filepath.Join(rundir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid)), nil
}
