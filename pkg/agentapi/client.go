package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxAnswer bounds an answer: a list of 100,000 allocations fits.
const maxAnswer = 32 << 20

// Client calls the agent on its socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient is a client of the agent serving on socket ("" is DefaultSocket).
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 1,
	}}}
}

// Status asks whether the agent is ready.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.call(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Network describes network name on this host.
func (c *Client) Network(ctx context.Context, name string) (Network, error) {
	var n Network
	return n, c.call(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &n)
}

// Allocate asks for an address.
func (c *Client) Allocate(ctx context.Context, r AllocateRequest) (Allocation, error) {
	var a Allocation
	return a, c.call(ctx, http.MethodPost, "/v1/addresses", r, &a)
}

// Release gives an allocation back.
func (c *Client) Release(ctx context.Context, r ReleaseRequest) error {
	return c.call(ctx, http.MethodDelete, "/v1/addresses", r, nil)
}

// Allocations lists the allocations of network ("": all) whose owner
// starts with ownerPrefix ("": all).
func (c *Client) Allocations(ctx context.Context, network, ownerPrefix string) ([]Allocated, error) {
	q := url.Values{}
	if network != "" {
		q.Set("network", network)
	}
	if ownerPrefix != "" {
		q.Set("owner-prefix", ownerPrefix)
	}
	path := "/v1/addresses"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l []Allocated
	return l, c.call(ctx, http.MethodGet, path, nil, &l)
}

// call sends one request; an error answer becomes an error wrapping the
// sentinel of its code, with the agent's message.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w on %s: %w", ErrUnreachable, c.socket, err)
		}
		return fmt.Errorf("agent on %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("agent on %s: %w", c.socket, err)
	}
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return fmt.Errorf("%w: agent answered %s: %q", ErrInternal, resp.Status, bytes.TrimSpace(data))
		}
		_, sentinel := lookup(e.Code)
		return &Error{Code: e.Code, Message: e.Error, sentinel: sentinel}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agent on %s: answer: %w", c.socket, err)
	}
	return nil
}

// Error is an error answer of the agent.
type Error struct {
	Code     Code
	Message  string // the agent's words, its sentinel's text included
	sentinel error
}

func (e *Error) Error() string { return "agent: " + e.Message }

// Unwrap is the sentinel error of e's code.
func (e *Error) Unwrap() error { return e.sentinel }
