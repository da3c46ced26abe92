// Command ofctl-agent is the per-host OpenFlow 1.3 controller for an Open
// vSwitch integration bridge, and the tool that plumbs containers into it.
//
//	ofctl-agent run [flags]            the daemon (see -h for its flags)
//	ofctl-agent attach [flags] TARGET  plumb a veth into a container (replaces ovs-docker add-port)
//	ofctl-agent detach [flags] TARGET  undo attach (--all for every interface of TARGET)
//	ofctl-agent dump-flows [flags]     the flows in OVS compared with the desired ones (asks the agent)
//	ofctl-agent trace [flags] PACKET   a packet's path: the agent's model next to ofproto/trace
//	ofctl-agent cleanup [flags]        remove the agent's packet filter, gateway ports and flows (decommissioning)
//	ofctl-agent version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: it gets its arguments and the process's
// standard streams, and returns the exit status.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func commands() map[string]command {
	return map[string]command{
		"run":        runAgent,
		"attach":     runAttach,
		"detach":     runDetach,
		"version":    runVersion,
		"dump-flows": runDumpFlows,
		"trace":      runTrace,
		"cleanup":    runCleanup,
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "usage: ofctl-agent run|attach|detach|dump-flows|trace|cleanup|version [flags]")
		return 2
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ofctl-agent: unknown command %q (want run, attach, detach, dump-flows, trace, cleanup or version)\n", args[0])
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	gov := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
	}
	fmt.Fprintf(stdout, "ofctl-agent %s (%s)\n", version, gov)
	return 0
}
