package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/debugapi"
)

const traceUsageHead = `usage: ofctl-agent trace [--listen ADDR] [--json] FIELD=VALUE[,FIELD=VALUE...] ...

Traces a packet through the pipeline twice: as the agent's desired flows
predict it, and as OVS runs it (ofproto/trace in ovs-vswitchd), table by
table, and flags every difference. Asks the running agent (GET /debug/trace).

Fields (as in ovs-ofctl flows; separate them by commas or spaces):
  in_port=OFPORT|NAME                    required
  arp | ip | icmp                        the kind of packet (else inferred)
  dl_src, dl_dst                         default: the input endpoint's MAC;
                                         broadcast for ARP, nw_dst's MAC for IP
  arp_op, arp_spa, arp_tpa, arp_sha, arp_tha   default: a request from the
                                         input endpoint; arp_tpa required
  nw_src, nw_dst                         nw_src default: the endpoint's IP
  tun_src, tun_id                        for packets from the tunnel port
Examples:
  ofctl-agent trace in_port=vca arp_tpa=10.100.2.10
  ofctl-agent trace icmp,in_port=vca,nw_dst=10.100.2.10

Exit status: 0 OVS does what the agent's flows predict; 1 they differ; 2
bad usage or packet; 3 the agent could not be asked, or OVS could not trace.

flags:
`

type traceArgs struct {
	client debugClient
	query  url.Values
	json   bool
}

func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseTrace(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return debugFail(stderr, "trace", err)
	}
	rep, err := report(ctx, a.client, "/debug/trace", a.query, a.json, stdout, "trace report", debugapi.WriteTraceText)
	switch {
	case err != nil:
		return debugFail(stderr, "trace", err)
	case rep.OVS == nil:
		return exitFailed
	case len(rep.Differences) > 0:
		return exitProblems
	}
	return exitOK
}

func parseTrace(args []string, stderr io.Writer) (traceArgs, error) {
	a := traceArgs{query: url.Values{}}
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.StringVar(&a.client.listen, "listen", defaultListen, listenHelp)
	fs.DurationVar(&a.client.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.BoolVar(&a.json, "json", false, "print the agent's JSON report (fields documented in pkg/debugapi)")
	pos, err := parseArgs(fs, args, stderr, traceUsageHead)
	if err != nil {
		return a, err
	}
	if len(pos) == 0 {
		return a, usageErrorf("no packet: give at least in_port=... and arp_tpa=... or nw_dst=...")
	}
	for _, arg := range pos {
		for _, tok := range strings.Split(arg, ",") {
			if err := addTraceField(a.query, strings.TrimSpace(tok)); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}

// addTraceField adds "name=value" or a bare arp/ip/icmp to q.
func addTraceField(q url.Values, tok string) error {
	if tok == "" {
		return nil
	}
	name, value, hasValue := strings.Cut(tok, "=")
	switch {
	case !slices.Contains(debugapi.TraceParams, name) || name == "format":
		return usageErrorf("unknown field %q (known: %s)", name, strings.Join(debugapi.TraceParams[:len(debugapi.TraceParams)-1], ", "))
	case q.Has(name):
		return usageErrorf("field %s given twice", name)
	case !hasValue && name != "arp" && name != "ip" && name != "icmp":
		return usageErrorf("field %s needs a value (%s=...)", name, name)
	}
	q.Set(name, value)
	return nil
}
