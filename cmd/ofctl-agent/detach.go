package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

const detachUsageHead = `usage: ofctl-agent detach [flags] TARGET
       ofctl-agent detach --all [flags] TARGET

Removes what attach made: the OVS port and the veth of interface --ifname of
TARGET, or with --all every port attach made for TARGET (replaces ovs-docker
del-port and del-ports), and gives back to the agent an address an attach
killed before its port still holds. TARGET as for attach; the container need
not run. Exit status: 0 done (--all: also when nothing was attached), 1 failed
or not attached, 2 bad usage.

flags:
`

// common are the flags attach and detach share.
type common struct {
	bridge, ovsdb, netnsHost string
	pid                      int
	timeout                  time.Duration
	json, verbose            bool
	target                   target
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.bridge, "bridge", "br-int", "integration `BRIDGE`")
	fs.StringVar(&c.ovsdb, "ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB `ENDPOINT` (unix:PATH or tcp:HOST:PORT)")
	fs.StringVar(&c.netnsHost, "netns-host", "", "network namespace `PATH` of the bridge's ovs-vswitchd and the host veth end; default: the current one")
	fs.IntVar(&c.pid, "pid", 0, "target the network namespace of process `PID` instead of TARGET")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "give up after this long")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON")
	fs.BoolVar(&c.verbose, "v", false, "log each step to stderr")
}

type detachArgs struct {
	common
	ifname      string
	all         bool
	agentSocket string
}

// detachResult is what detach reports (--json prints it as is).
type detachResult struct {
	Action      string   `json:"action"` // "detached", "released" (an allocation alone) or "nothing-attached"
	ContainerID string   `json:"container_id"`
	Ports       []string `json:"ports"`
	// Released are the allocations without a port given back
	// ("network/ip"): left by an attach that did not finish.
	Released []string `json:"released,omitempty"`
}

func runDetach(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d, err := parseDetach(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(stderr, "detach", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	res, err := doDetach(ctx, d, stderr)
	if err != nil {
		return fail(stderr, "detach", err)
	}
	if d.json {
		return printJSON(stdout, stderr, res)
	}
	for _, r := range res.Released {
		fmt.Fprintf(stdout, "released %s of %s: an attach that did not finish held it\n", r, res.ContainerID)
	}
	if len(res.Ports) == 0 {
		if len(res.Released) == 0 {
			fmt.Fprintf(stdout, "nothing attached to %s\n", res.ContainerID)
		}
		return 0
	}
	what := res.ContainerID
	if !d.all {
		what += " " + d.ifname
	}
	fmt.Fprintf(stdout, "detached %s: port %s\n", what, strings.Join(res.Ports, ", "))
	return 0
}

func parseDetach(args []string, stderr io.Writer) (detachArgs, error) {
	d := detachArgs{}
	fs := flag.NewFlagSet("detach", flag.ContinueOnError)
	d.common.register(fs)
	fs.StringVar(&d.ifname, "ifname", attach.DefaultIfName, "interface `NAME` inside the container")
	fs.BoolVar(&d.all, "all", false, "remove every interface attach made for TARGET")
	fs.StringVar(&d.agentSocket, "agent-socket", agentapi.DefaultSocket, "`PATH` of the agent's local API socket, where detach gives back what an unfinished attach allocated (skipped without the agent)")
	pos, err := parseArgs(fs, args, stderr, detachUsageHead)
	if err != nil {
		return d, err
	}
	if d.target, err = newTarget(d.pid, pos); err != nil {
		return d, err
	}
	ifnameSet := false
	fs.Visit(func(f *flag.Flag) { ifnameSet = ifnameSet || f.Name == "ifname" })
	if d.all && ifnameSet {
		return d, usageErrorf("give --ifname or --all, not both")
	}
	return d, nil
}

func doDetach(ctx context.Context, d detachArgs, stderr io.Writer) (_ detachResult, err error) {
	id, err := d.target.resolveID(ctx)
	if err != nil {
		return detachResult{}, err
	}
	hostNS, err := d.openHostNS()
	if err != nil {
		return detachResult{}, err
	}
	defer hostNS.Close()
	ports, closePorts, err := d.openPorts(ctx, stderr)
	if err != nil {
		return detachResult{}, err
	}
	defer closePorts()
	at := &attach.Attacher{Ports: ports, HostNS: hostNS, Log: d.logger(stderr)}
	res := detachResult{Action: "detached", ContainerID: id, Ports: []string{}}
	defer func() {
		if err == nil {
			removeResolvConf(d.target.path) // attach's own file alone (attachdns.go)
		}
	}()
	if d.all {
		removed, err := at.DetachAll(ctx, id)
		res.Ports = append(res.Ports, removed...)
		if err != nil {
			return res, err
		}
		res.Released = d.releaseLeftAllocations(ctx, id, stderr)
		switch {
		case len(res.Ports) == 0 && len(res.Released) > 0:
			res.Action = "released"
		case len(res.Ports) == 0:
			res.Action = "nothing-attached"
		}
		return res, nil
	}
	err = at.Detach(ctx, id, d.ifname)
	if err != nil && !errors.Is(err, attach.ErrNotAttached) {
		return res, err
	}
	res.Released = d.releaseLeftAllocations(ctx, id, stderr)
	if err != nil { // not attached: an allocation alone is something to undo
		if len(res.Released) == 0 {
			return res, err
		}
		res.Action = "released"
		return res, nil
	}
	res.Ports = []string{attach.HostIfName(id, d.ifname)}
	return res, nil
}

// parseArgs parses flags, which may come before and after the positional
// arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer, head string) ([]string, error) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), head)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// target is what to attach to or detach from: exactly one of its fields.
type target struct {
	path   string // network namespace path
	pid    int
	docker string // container name or id
}

func newTarget(pid int, pos []string) (target, error) {
	switch {
	case len(pos) > 1:
		return target{}, usageErrorf("want one TARGET, got %d: %s", len(pos), strings.Join(pos, " "))
	case pid < 0:
		return target{}, usageErrorf("--pid %d: want a process id", pid)
	case pid > 0 && len(pos) == 1:
		return target{}, usageErrorf("give either --pid or TARGET (%s), not both", pos[0])
	case pid > 0:
		return target{pid: pid}, nil
	case len(pos) == 0:
		return target{}, usageErrorf("missing TARGET (a namespace path, a Docker container, or --pid)")
	case pos[0] == "":
		return target{}, usageErrorf("empty TARGET")
	case strings.Contains(pos[0], "/"):
		return target{path: pos[0]}, nil
	}
	return target{docker: pos[0]}, nil
}

// resolveAttach finds the container's namespace (a Docker container must
// be running).
func (t target) resolveAttach(ctx context.Context) (attach.Container, error) {
	switch {
	case t.pid > 0:
		return attach.PIDTarget(t.pid)
	case t.path != "":
		return attach.NetNSTarget(t.path)
	}
	c, err := attach.NewDocker("").Resolve(ctx, t.docker)
	return c, t.dockerHint(err)
}

// resolveID finds the container id that attach recorded; the container may
// be gone.
func (t target) resolveID(ctx context.Context) (string, error) {
	switch {
	case t.pid > 0:
		return "/proc/" + strconv.Itoa(t.pid) + "/ns/net", nil
	case t.path != "":
		return filepath.Abs(t.path)
	}
	id, err := attach.NewDocker("").Lookup(ctx, t.docker)
	return id, t.dockerHint(err)
}

// dockerHint points at the namespace path when TARGET names an ip-netns
// namespace but was taken for a Docker container.
func (t target) dockerHint(err error) error {
	if err == nil {
		return nil
	}
	if p := filepath.Join("/var/run/netns", t.docker); fileExists(p) {
		return fmt.Errorf("%w (for the network namespace, give its path: %s)", err, p)
	}
	return err
}

// openHostNS opens --netns-host once (nil: the current namespace).
func (c common) openHostNS() (*attach.NetNS, error) {
	if c.netnsHost == "" {
		return nil, nil
	}
	ns, err := attach.OpenNetNS(c.netnsHost)
	if err != nil {
		return nil, fmt.Errorf("--netns-host: %w", err)
	}
	return ns, nil
}

// openPorts connects to OVSDB and waits for the bridge to be seen; close
// stops the client.
func (c common) openPorts(ctx context.Context, stderr io.Writer) (*attach.OVSPorts, func(), error) {
	cl, err := ovsdb.New(ovsdb.Config{Endpoint: c.ovsdb, Bridge: ovsdb.BridgeConfig{Name: c.bridge},
		Logger: c.logger(stderr), ProbeInterval: -1})
	if err != nil {
		return nil, nil, usageError{err}
	}
	stop := cl.Start(ctx)
	p := attach.NewOVSPorts(cl)
	if err := p.Ready(ctx, 2*time.Second); err != nil {
		stop()
		return nil, nil, fmt.Errorf("ovsdb %s: %w", c.ovsdb, err)
	}
	return p, stop, nil
}

func (c common) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelError
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usageErrorf(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// fail prints err as one line and returns the exit status for it.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "ofctl-agent %s: %s\n", cmd, oneLine(err))
	code := exitCode(err)
	if code == 2 {
		fmt.Fprintf(stderr, "run 'ofctl-agent %s -h' for usage\n", cmd)
	}
	return code
}

// exitCode is 2 for a bad command line (including options attach refuses),
// 1 for any other failure.
func exitCode(err error) int {
	var ue usageError
	var oe *attach.OptionError
	if errors.As(err, &ue) || errors.As(err, &oe) {
		return 2
	}
	return 1
}

// oneLine joins the lines of joined errors.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
