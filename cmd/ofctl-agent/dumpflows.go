package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/debugapi"
)

const dumpFlowsUsageHead = `usage: ofctl-agent dump-flows [--listen ADDR] [filters] [--json]

Lists the flows actually in OVS for the agent's bridge, grouped by table,
each with its packet and byte counters, what it is for, and its status:
expected (as desired), MISSING (desired, not in OVS), UNEXPECTED (in OVS,
not desired: foreign or stale), DIFFERENT (desired match, other actions or
cookie), FAILED (OVS refused this flow or another of its owner: the owner's
flows are kept out of OVS and retried; the note gives OVS's error), WAITING
(another owner holds its key: a conflict). Asks the running agent (GET
/debug/flows).

Exit status: 0 every listed flow is as desired; 1 some listed flow is
missing, unexpected, different or failed (waiting ones are not counted); 2
bad usage or filter; 3 the agent could not be asked.

flags:
`

type dumpFlowsArgs struct {
	client                                 debugClient
	table, endpoint, port, network, status string
	json                                   bool
}

func runDumpFlows(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseDumpFlows(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return debugFail(stderr, "dump-flows", err)
	}
	q := url.Values{}
	for k, v := range map[string]string{"table": a.table, "endpoint": a.endpoint, "port": a.port,
		"network": a.network, "status": a.status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	rep, err := report(ctx, a.client, "/debug/flows", q, a.json, stdout, "flows report", debugapi.WriteFlowsText)
	if err != nil {
		return debugFail(stderr, "dump-flows", err)
	}
	if rep.Problems() > 0 {
		return exitProblems
	}
	return exitOK
}

func parseDumpFlows(args []string, stderr io.Writer) (dumpFlowsArgs, error) {
	var a dumpFlowsArgs
	fs := flag.NewFlagSet("dump-flows", flag.ContinueOnError)
	fs.StringVar(&a.client.listen, "listen", defaultListen, listenHelp)
	fs.DurationVar(&a.client.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.StringVar(&a.table, "table", "", "only table `NAME|ID` (classifier, spoof_guard, arp_responder, ... or 0-254)")
	fs.StringVar(&a.endpoint, "endpoint", "", "only the flows of a local endpoint (`PORT|IP`), or matching an IP")
	fs.StringVar(&a.port, "port", "", "only flows matching in_port or outputting to `OFPORT|NAME`")
	fs.StringVar(&a.network, "network", "", "only the flows of network `NAME` (its VNI, or owned by it or its endpoints)")
	fs.StringVar(&a.status, "status", "", "only flows with these `STATUS`es: expected, waiting, missing, unexpected, different, failed (comma-separated)")
	fs.BoolVar(&a.json, "json", false, "print the agent's JSON report (fields documented in pkg/debugapi)")
	pos, err := parseArgs(fs, args, stderr, dumpFlowsUsageHead)
	if err != nil {
		return a, err
	}
	if len(pos) > 0 {
		return a, usageErrorf("unexpected arguments: %s (filters are flags, e.g. --table l2_forward)", strings.Join(pos, " "))
	}
	return a, nil
}
