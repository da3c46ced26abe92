package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/debugapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// debugHandlers are the daemon's /debug/flows and /debug/trace.
func debugHandlers(cfg config.Config, ag *agent.Agent, log *slog.Logger) map[string]http.Handler {
	ctl := func() (string, error) {
		if cfg.VswitchdCtl != "" {
			return cfg.VswitchdCtl, nil
		}
		return debugapi.VswitchdCtl(cfg.OVSRunDir)
	}
	of := openflow.Config{Addr: cfg.OpenFlow, EchoInterval: cfg.EchoInterval, DeadInterval: cfg.DeadInterval,
		Logger: log.With("connection", "debug")}
	return debugapi.Handlers(ag, debugapi.Options{Bridge: cfg.Bridge, OpenFlow: of, VswitchdCtl: ctl, Logger: log})
}

// Exit statuses of the debug clients (dump-flows, trace).
const (
	exitOK       = 0
	exitProblems = 1 // drift found: flows not as desired, or a trace difference
	exitUsage    = 2 // bad command line or query (the agent's 400)
	exitFailed   = 3 // the agent could not be asked, or could not answer
)

// defaultListen is where `ofctl-agent run` serves HTTP by default.
const defaultListen = "127.0.0.1:9750"

// listenHelp documents the debug clients' --listen.
const listenHelp = "the agent's HTTP `ADDR`: HOST:PORT, or a URL; with the agent's --web-config-file, " +
	"https://USER:PASSWORD@HOST:PORT (a private CA: SSL_CERT_FILE=CA.pem)"

// debugClient asks a running agent's debug endpoints.
type debugClient struct {
	listen  string // HOST:PORT, or a base URL (http://, https://user:pass@...)
	timeout time.Duration
}

func (c debugClient) baseURL() string {
	if strings.HasPrefix(c.listen, "http://") || strings.HasPrefix(c.listen, "https://") {
		return strings.TrimSuffix(c.listen, "/")
	}
	return "http://" + c.listen
}

// get fetches path?q and returns the body of a 200 answer. A 400 is a
// usageError carrying the agent's message.
func (c debugClient) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.baseURL() + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, usageErrorf("--listen %q: %v", c.listen, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent at %s (is `ofctl-agent run` running there? see --listen): %w", c.listen, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the agent's answer: %w", err)
	}
	msg := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		return nil, usageErrorf("the agent refused the query: %s", msg)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("the agent answered %s: %s (it wants credentials: --listen https://USER:PASSWORD@HOST:PORT)", resp.Status, msg)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("the agent answered %s: %s", resp.Status, msg)
	}
	return body, nil
}

// report asks the agent for path as JSON, decodes the answer into a report
// of type R and prints it: the agent's JSON as is when asJSON, else as text
// by writeText. what names the report in errors ("flows report").
func report[R any](ctx context.Context, c debugClient, path string, q url.Values, asJSON bool,
	stdout io.Writer, what string, writeText func(io.Writer, R) error) (R, error) {
	var rep R
	q.Set("format", "json")
	body, err := c.get(ctx, path, q)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("the agent's answer is not a %s: %w", what, err)
	}
	if asJSON {
		_, err = stdout.Write(body)
	} else {
		err = writeText(stdout, rep)
	}
	return rep, err
}

// debugFail prints err and returns exitUsage or exitFailed.
func debugFail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "ofctl-agent %s: %s\n", cmd, oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "run 'ofctl-agent %s -h' for usage\n", cmd)
		return exitUsage
	}
	return exitFailed
}
