package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

const cleanupUsageHead = `usage: ofctl-agent cleanup [flags]

Removes what the agent keeps on this host, for a host being decommissioned:
its nftables table (ip ofctl-agent) and its accept rules in Docker's
DOCKER-USER chain, its gateway ports on the bridge and their routing rules
(ip rule ... lookup 28519), and every flow of the
bridge (the agent owns them all). Endpoint ports (attach's) are left: detach
them first. The bridge and its tunnel port stay (ovs-vsctl del-br removes
them). Stop the agent first: a running agent puts everything back; cleanup
refuses while the agent answers on --agent-socket.
Exit status: 0 done (also when there was nothing to remove), 1 failed, 2 bad
usage.

flags:
`

type cleanupArgs struct {
	bridge, ovsdb, openflow, rundir, agentSocket, netns string
	timeout                                             time.Duration
	json, verbose                                       bool
}

// cleanupResult is what cleanup did (--json prints it as is).
type cleanupResult struct {
	Table        string   `json:"table"`         // the nftables table removed ("" when there was none)
	GatewayPorts []string `json:"gateway_ports"` // ports removed
	Flows        bool     `json:"flows"`         // the bridge's flows were deleted
	Rules        int      `json:"routing_rules"` // the gateways' routing rules removed (to <subnet> lookup 28519)
}

func runCleanup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseCleanup(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(stderr, "cleanup", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := doCleanup(ctx, c, stderr)
	if err != nil {
		return fail(stderr, "cleanup", err)
	}
	if c.json {
		return printJSON(stdout, stderr, res)
	}
	fmt.Fprintf(stdout, "removed: nftables table %s, %d gateway ports %v, the flows of bridge %s\n",
		netfilter.DefaultTable, len(res.GatewayPorts), res.GatewayPorts, c.bridge)
	return 0
}

func parseCleanup(args []string, stderr io.Writer) (cleanupArgs, error) {
	c := cleanupArgs{}
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.StringVar(&c.bridge, "bridge", "br-int", "integration `BRIDGE`")
	fs.StringVar(&c.ovsdb, "ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB `ENDPOINT` (unix:PATH or tcp:HOST:PORT)")
	fs.StringVar(&c.rundir, "ovs-rundir", "/var/run/openvswitch", "OVS run `DIR` holding <bridge>.mgmt")
	fs.StringVar(&c.openflow, "openflow", "", "OpenFlow `ENDPOINT` of the bridge (default unix:<ovs-rundir>/<bridge>.mgmt)")
	fs.StringVar(&c.agentSocket, "agent-socket", agentapi.DefaultSocket, "`PATH` of the agent's local API socket: cleanup refuses while the agent answers there")
	fs.StringVar(&c.netns, "netns-host", "", "network namespace `PATH` of the host's packet filter and the bridge's ovs-vswitchd; default: the current one")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON")
	fs.BoolVar(&c.verbose, "v", false, "log each step to stderr")
	pos, err := parseArgs(fs, args, stderr, cleanupUsageHead)
	if err != nil {
		return c, err
	}
	if len(pos) > 0 {
		return c, usageErrorf("unexpected arguments %q", pos)
	}
	if c.openflow == "" {
		c.openflow = "unix:" + filepath.Join(c.rundir, c.bridge+".mgmt")
	}
	return c, nil
}

func doCleanup(ctx context.Context, c cleanupArgs, stderr io.Writer) (cleanupResult, error) {
	var res cleanupResult
	switch _, err := agentapi.NewClient(c.agentSocket).Status(ctx); {
	case err == nil:
		return res, fmt.Errorf("the agent answers on %s: stop it first (systemctl stop ofctl-agent), or it puts everything back", c.agentSocket)
	case !errors.Is(err, agentapi.ErrUnreachable):
		return res, fmt.Errorf("asking the agent on %s whether it runs: %w", c.agentSocket, err)
	}
	log := common{verbose: c.verbose}.logger(stderr)
	if err := netfilter.Cleanup(netfilter.Options{NetNS: c.netns, Logger: log}); err != nil {
		return res, err
	}
	res.Table = netfilter.DefaultTable
	log.Debug("nftables table and DOCKER-USER rules removed", "table", netfilter.DefaultTable)
	ports, closePorts, err := common{bridge: c.bridge, ovsdb: c.ovsdb, verbose: c.verbose}.openPorts(ctx, stderr)
	if err != nil {
		return res, err
	}
	defer closePorts()
	if res.GatewayPorts, err = removeGatewayPorts(ctx, ports); err != nil {
		return res, err
	}
	links, err := gateway.NewNetlinkLinks(c.netns)
	if err != nil {
		return res, err
	}
	defer links.Close()
	rules, err := links.Prune(nil) // the gateways' routing rules (their routes went with the ports)
	if err != nil {
		return res, fmt.Errorf("removing the gateways' routing rules: %w", err)
	}
	res.Rules = len(rules)
	log.Debug("gateway routing rules removed", "rules", rules)
	if err := deleteAllFlows(ctx, c.openflow); err != nil {
		return res, fmt.Errorf("deleting the flows of bridge %s: %w", c.bridge, err)
	}
	res.Flows = true
	return res, nil
}

// removeGatewayPorts deletes the bridge's gateway ports.
func removeGatewayPorts(ctx context.Context, ports *attach.OVSPorts) ([]string, error) {
	list, err := ports.Ports(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing ports: %w", err)
	}
	removed := []string{}
	for _, p := range list {
		if !isGatewayPort(p) {
			continue
		}
		if err := ports.DeletePort(ctx, p.Name); err != nil {
			return removed, fmt.Errorf("removing gateway port %s: %w", p.Name, err)
		}
		removed = append(removed, p.Name)
	}
	return removed, nil
}

// isGatewayPort says whether a bridge port is one of the agent's gateway
// ports: marked external_ids ofctl-agent.role=gateway (pkg/gateway's
// keeper), or named gateway.PortName (ofgw-) without endpoint keys.
func isGatewayPort(p attach.Port) bool {
	if p.ExternalIDs[endpoint.KeyRole] == endpoint.RoleGateway {
		return true
	}
	_, isEndpoint := p.ExternalIDs[endpoint.KeyNetwork]
	return strings.HasPrefix(p.Name, gateway.Prefix) && !isEndpoint
}

// deleteAllFlows deletes every flow of every table in one bundle.
func deleteAllFlows(ctx context.Context, addr string) error {
	conn, err := openflow.Dial(ctx, openflow.Config{Addr: addr})
	if err != nil {
		return err
	}
	defer conn.Close()
	fm := openflow13.NewFlowMod()
	fm.Command = openflow13.FC_DELETE
	fm.TableId = openflow13.OFPTT_ALL
	b, err := conn.Bundle(ctx)
	if err != nil {
		return err
	}
	if err := b.Add(fm); err != nil {
		return err
	}
	return b.Commit(ctx)
}
