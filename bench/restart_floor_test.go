package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// restartFloor is what any agent restart on the bed must at least wait for,
// measured with no agent running: OVSDB handing out the rows and columns the
// agent monitors, and OVS dumping the flow tables.
type restartFloor struct {
	ovsdb     time.Duration // one ovsdb-client select of the agent's columns
	ovsdbCPU  time.Duration // of it, ovsdb-client's own CPU
	dump      time.Duration // every flow in one flow-stats request on a bare connection
	ofctlDump time.Duration // the same dump by `ovs-ofctl dump-flows` (for reference)
}

// total is the floor: the OVSDB read, then the dump.
func (f restartFloor) total() time.Duration { return f.ovsdb + f.dump }

// agentColumnsTxn selects, in one transaction, the tables and columns the
// agent's OVSDB monitor reads (pkg/ovsdb newMonitor): nothing more.
const agentColumnsTxn = `["Open_vSwitch",` +
	`{"op":"select","table":"Open_vSwitch","where":[],"columns":["bridges","other_config"]},` +
	`{"op":"select","table":"Bridge","where":[],"columns":["name","ports","fail_mode","protocols","datapath_type","other_config","flow_tables"]},` +
	`{"op":"select","table":"Flow_Table","where":[],"columns":["name"]},` +
	`{"op":"select","table":"Port","where":[],"columns":["name","interfaces"]},` +
	`{"op":"select","table":"Interface","where":[],` +
	`"columns":["name","type","options","external_ids","ofport","ofport_request","mtu_request","mac_in_use","error"]}]`

// measureRestartFloor measures the floor once on the bed (no agent may
// run). wantFlows is the number of flows OVS must hold (the dump is checked
// against it).
func (e *agentBed) measureRestartFloor(b *testing.B, wantFlows int) restartFloor {
	b.Helper()
	var f restartFloor
	f.ovsdb, f.ovsdbCPU = e.selectAgentColumns(b)
	f.dump = e.rawDump(b, wantFlows)
	start := time.Now()
	e.node.Ofctl(b, "dump-flows", agentBridge)
	f.ofctlDump = time.Since(start)
	return f
}

// floorRun pairs restarts with the floor measured just before each: the
// machine's load changes between runs, and a ratio counts only against
// the floor of its moment.
type floorRun struct {
	floors []restartFloor
	ready  []time.Duration
}

func (r *floorRun) add(f restartFloor, ready time.Duration) {
	r.floors = append(r.floors, f)
	r.ready = append(r.ready, ready)
}

// report prints the medians of the floor and its parts, and the median of
// the ratios ready/floor of each pair (prefix names the restarts).
func (r *floorRun) report(b *testing.B, prefix string) {
	part := func(get func(restartFloor) time.Duration) time.Duration {
		var ds []time.Duration
		for _, f := range r.floors {
			ds = append(ds, get(f))
		}
		return quantile(ds, 0.5)
	}
	ratios := make([]float64, len(r.ready))
	for i, f := range r.floors {
		ratios[i] = r.ready[i].Seconds() / f.total().Seconds()
	}
	slices.Sort(ratios)
	b.ReportMetric(part(func(f restartFloor) time.Duration { return f.ovsdb }).Seconds(), "floor-ovsdb-s")
	b.ReportMetric(part(func(f restartFloor) time.Duration { return f.ovsdbCPU }).Seconds(), "floor-ovsdb-client-cpu-s")
	b.ReportMetric(part(func(f restartFloor) time.Duration { return f.dump }).Seconds(), "floor-dump-s")
	b.ReportMetric(part(func(f restartFloor) time.Duration { return f.ofctlDump }).Seconds(), "ofctl-dump-s")
	b.ReportMetric(part(restartFloor.total).Seconds(), "floor-s")
	b.ReportMetric(ratios[len(ratios)/2], prefix+"-ready/floor")
	b.ReportMetric(ratios[0], prefix+"-ready/floor-min")
	b.ReportMetric(ratios[len(ratios)-1], prefix+"-ready/floor-max")
}

// selectAgentColumns runs agentColumnsTxn with ovsdb-client and returns its
// wall time and the client's own CPU (user + system); it checks that every
// endpoint's Port and Interface row came back.
func (e *agentBed) selectAgentColumns(b *testing.B) (wall, cpu time.Duration) {
	b.Helper()
	return e.timedSelect(b, agentColumnsTxn, 5, 3, 4)
}

// timedSelect runs txn, a transaction of selects, with ovsdb-client and
// returns its wall time and the client's own CPU (user + system). It checks
// that txn's results operations all answered without an error and that
// the results ports and ifaces (their indexes) hold a row for each
// endpoint.
func (e *agentBed) timedSelect(b *testing.B, txn string, results, ports, ifaces int) (wall, cpu time.Duration) {
	b.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command("ovsdb-client", "transact", e.node.DBAddr(), txn)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	wall = time.Since(start)
	if err != nil {
		b.Fatalf("ovsdb-client transact: %v: %s", err, stderr.Bytes())
	}
	var got []struct {
		Rows  []json.RawMessage `json:"rows"`
		Error string            `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != results {
		b.Fatalf("ovsdb-client select: %v: %.500s", err, out.Bytes())
	}
	for _, r := range got {
		if r.Error != "" {
			b.Fatalf("ovsdb-client select: %s", r.Error)
		}
	}
	if n := len(got[ports].Rows) + len(got[ifaces].Rows); n < 2*benchEndpoints {
		b.Fatalf("ovsdb-client select returned %d Port and Interface rows, want at least %d", n, 2*benchEndpoints)
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// rawDump dials br-int (a bare pkg/openflow connection, dial and handshake
// not timed) and times one flow-stats request of every table, the replies
// read and split into entries, nothing decoded. It checks the count.
func (e *agentBed) rawDump(b *testing.B, want int) time.Duration {
	b.Helper()
	ctx := context.Background()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: e.node.MgmtAddr(agentBridge)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	start := time.Now()
	err = c.FlowStatsEach(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables}, func(*openflow.FlowStats) error {
		n++
		return nil
	})
	took := time.Since(start)
	if err != nil {
		b.Fatalf("flow dump: %v", err)
	}
	if n != want {
		b.Fatalf("flow dump returned %d flows, want %d", n, want)
	}
	return took
}
