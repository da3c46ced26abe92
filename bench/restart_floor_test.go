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
	ovsdb     time.Duration // one ovsdb-client select of the agent's columns (median of floorRepeats)
	ovsdbCPU  time.Duration // of it, ovsdb-client's own CPU (that median run)
	dump      time.Duration // every flow in one flow-stats request on a bare connection (median)
	ofctlDump time.Duration // the same dump by `ovs-ofctl dump-flows` (median; for reference)
}

// total is the floor: the OVSDB read, then the dump.
func (f restartFloor) total() time.Duration { return f.ovsdb + f.dump }

// floorRepeats is how often each part of the floor is measured: the median
// counts (a loaded machine makes single runs noisy).
const floorRepeats = 3

// agentColumnsTxn selects, in one transaction, the tables and columns the
// agent's OVSDB monitor reads (pkg/ovsdb newMonitor): nothing more.
const agentColumnsTxn = `["Open_vSwitch",` +
	`{"op":"select","table":"Open_vSwitch","where":[],"columns":["bridges","other_config"]},` +
	`{"op":"select","table":"Bridge","where":[],"columns":["name","ports","fail_mode","protocols","datapath_type","other_config","flow_tables"]},` +
	`{"op":"select","table":"Flow_Table","where":[],"columns":["name"]},` +
	`{"op":"select","table":"Port","where":[],"columns":["name","interfaces"]},` +
	`{"op":"select","table":"Interface","where":[],` +
	`"columns":["name","type","options","external_ids","ofport","ofport_request","mtu_request","mac_in_use","error"]}]`

// measureRestartFloor measures the floor on the bed (no agent may run): each
// part floorRepeats times, alternating, the medians. wantFlows is the
// number of flows OVS must hold (the dump is checked against it).
func (e *agentBed) measureRestartFloor(b *testing.B, wantFlows int) restartFloor {
	b.Helper()
	var sel, cpu, dump, ofctl []time.Duration
	for range floorRepeats {
		w, c := e.selectAgentColumns(b)
		sel, cpu = append(sel, w), append(cpu, c)
		dump = append(dump, e.rawDump(b, wantFlows))
		start := time.Now()
		e.node.Ofctl(b, "dump-flows", agentBridge)
		ofctl = append(ofctl, time.Since(start))
	}
	f := restartFloor{ovsdb: quantile(sel, 0.5), dump: quantile(dump, 0.5), ofctlDump: quantile(ofctl, 0.5)}
	f.ovsdbCPU = cpu[slices.Index(sel, f.ovsdb)]
	return f
}

// report prints the floor next to a restart's ready time (start to ready).
func (f restartFloor) report(b *testing.B, prefix string, ready time.Duration) {
	b.ReportMetric(f.ovsdb.Seconds(), "floor-ovsdb-s")
	b.ReportMetric(f.ovsdbCPU.Seconds(), "floor-ovsdb-client-cpu-s")
	b.ReportMetric(f.dump.Seconds(), "floor-dump-s")
	b.ReportMetric(f.ofctlDump.Seconds(), "ofctl-dump-s")
	b.ReportMetric(f.total().Seconds(), "floor-s")
	b.ReportMetric(ready.Seconds()/f.total().Seconds(), prefix+"-ready/floor")
}

// selectAgentColumns runs agentColumnsTxn with ovsdb-client and returns its
// wall time and the client's own CPU (user + system); it checks that every
// endpoint's Port and Interface row came back.
func (e *agentBed) selectAgentColumns(b *testing.B) (wall, cpu time.Duration) {
	b.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command("ovsdb-client", "transact", e.node.DBAddr(), agentColumnsTxn)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	wall = time.Since(start)
	if err != nil {
		b.Fatalf("ovsdb-client transact: %v: %s", err, stderr.Bytes())
	}
	var results []struct {
		Rows  []json.RawMessage `json:"rows"`
		Error string            `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &results); err != nil || len(results) != 5 {
		b.Fatalf("ovsdb-client select: %v: %.500s", err, out.Bytes())
	}
	for _, r := range results {
		if r.Error != "" {
			b.Fatalf("ovsdb-client select: %s", r.Error)
		}
	}
	if n := len(results[3].Rows) + len(results[4].Rows); n < 2*benchEndpoints {
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
