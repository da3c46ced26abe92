package bench

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// daemonStart is one start of the ofctl-agent binary on a bridge that
// already holds the pipeline of benchEndpoints endpoints.
type daemonStart struct {
	ready    time.Duration // process start -> first /readyz 200 (polled every 5 ms)
	ovsdb    time.Duration // process start -> "ovsdb snapshot read" (or "ovsdb connected") logged: the interfaces known
	load     time.Duration // process start -> "model loaded" logged (log times are in ms)
	sync     time.Duration // the first Sync ("pipeline synchronised" took)
	flowMods int           // added + modified + deleted of the first Sync
}

// ovsdbSelectTxn selects the Interface and Port columns the agent reads at
// start: how long ovsdb-server takes to hand them out is the floor of any
// agent start.
const ovsdbSelectTxn = `["Open_vSwitch",{"op":"select","table":"Interface","where":[],` +
	`"columns":["name","type","options","external_ids","ofport","ofport_request","mac_in_use","error"]},` +
	`{"op":"select","table":"Port","where":[],"columns":["name","interfaces"]}]`

// BenchmarkAgentDaemon runs the real ofctl-agent binary on a bridge already
// programmed with 10,000 local endpoints (by an in-process agent, then
// stopped): start to ready and the first Sync's flow_mods for a first
// start, a start after SIGTERM (asserted exit 0 within 10 s) and a start
// after SIGKILL, each next to the floor measured just before it
// (restart_floor_test.go), each asserted to send no flow_mod (the Sync's log line and
// /metrics at ready, and OVS's own flow monitor, which reports even a flow
// re-added unchanged) and to leave the whole pipeline in OVS; its memory
// after the first start (RSS and live heap after a forced GC, peak RSS);
// and, as the floor, one ovsdb-client select of the rows the agent reads at
// start. The first start also sets gre0's options:local_ip (the in-process
// agent has no tunnel IP): one OVSDB update, no flow change.
//
// The installed marks: how long after its flows were all in OVS the last
// of the 10,000 endpoints' marks is committed (in-process agent), and that no start writes a
// mark that is right. Before each start one endpoint's mark is removed by
// hand: the start must write that one back (the sign that it judged the
// marks) and no other (OVSDB's own log shows every write).
func BenchmarkAgentDaemon(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newAgentBed(b, "bdmn")
		r := e.programmed(b, benchEndpoints, nil)
		marked := e.waitMarked(b, time.Now(), time.Minute)
		r.stop()
		selWall, selCPU := e.ovsdbSelect(b)
		w := e.watchEvents(b) // independent: OVS reports every flow added, changed or removed

		var floors floorRun // each start next to the floor measured just before it
		since := e.unmark(b, 0)
		fl := e.measureRestartFloor(b, pipelineFlows(benchEndpoints))
		d, first := e.daemonStart(b, "first", w)
		floors.add(fl, first.ready)
		e.checkMarkWrites(b, "first", since, 0)
		time.Sleep(3 * time.Second) // idle: the first drift checks ran
		rss, heap := d.memory(b)
		peak := d.peakRSS(b)
		if mods := d.Metric(b, "ofctl_agent_flow_mods_total"); mods != 0 {
			b.Fatalf("agent sent %v flow_mods in its first 3 s, want 0", mods)
		}
		exit := d.Terminate(b)
		e.checkFlows(b, "after SIGTERM", w)

		since = e.unmark(b, 1)
		fl = e.measureRestartFloor(b, pipelineFlows(benchEndpoints))
		d, term := e.daemonStart(b, "term", w)
		floors.add(fl, term.ready)
		e.checkMarkWrites(b, "term", since, 1)
		d.Stop(syscall.SIGKILL)
		e.checkFlows(b, "after SIGKILL", w)
		since = e.unmark(b, 2)
		fl = e.measureRestartFloor(b, pipelineFlows(benchEndpoints))
		_, kill := e.daemonStart(b, "kill", w)
		floors.add(fl, kill.ready)
		e.checkMarkWrites(b, "kill", since, 2)
		time.Sleep(time.Second) // let late reports of the last start arrive
		e.checkFlows(b, "after the last start", w)

		for _, s := range []struct {
			name string
			r    daemonStart
		}{{"first", first}, {"term", term}, {"kill", kill}} {
			b.ReportMetric(s.r.ready.Seconds(), s.name+"-ready-s")
			b.ReportMetric(s.r.ovsdb.Seconds(), s.name+"-ovsdb-s")
			b.ReportMetric(s.r.load.Seconds(), s.name+"-load-s")
			b.ReportMetric(s.r.sync.Seconds(), s.name+"-sync-s")
			b.ReportMetric(float64(s.r.flowMods), s.name+"-flow_mods")
		}
		b.ReportMetric(exit.Seconds(), "sigterm-exit-s")
		b.ReportMetric(rss, "rss-MiB")
		b.ReportMetric(heap, "heap-MiB")
		b.ReportMetric(peak, "peak-rss-MiB")
		b.ReportMetric(selWall.Seconds(), "ovsdb-select-s")
		b.ReportMetric(selCPU.Seconds(), "ovsdb-client-cpu-s")
		b.ReportMetric(marked.Seconds(), "mark-10k-s")
		floors.report(b, "start")
	}
	b.ReportMetric(0, "ns/op")
}

// daemonStart starts the agent binary on the bed's node with its cluster
// file, waits until /readyz answers 200 and checks that the first Sync sent
// no flow_mod and that OVS still holds the whole pipeline.
func (e *agentBed) daemonStart(b *testing.B, name string, w *eventWatch) (*daemon, daemonStart) {
	b.Helper()
	args := append(daemonArgs(e.node, agentNode), "--cluster-file", e.cluster)
	d := startDaemon(b, filepath.Join(e.node.Dir, "agent-daemon-"+name+".log"), args...)
	var r daemonStart
	r.ready = d.WaitReady(b, 2*time.Minute)
	synced := d.logLine(b, "pipeline synchronised") // logged before /readyz turns 200
	r.sync = logDuration(b, synced, "took")
	for _, key := range []string{"added", "modified", "deleted"} {
		n, err := strconv.Atoi(synced[key])
		if err != nil {
			b.Fatalf("%s start: pipeline synchronised %s=%q: %v", name, key, synced[key], err)
		}
		r.flowMods += n
	}
	// The interfaces known: from the snapshot on a restart (the monitor
	// connects after ready), from the monitor before the snapshot existed.
	r.ovsdb = logTime(b, d.firstLogLine(b, "ovsdb snapshot read", "ovsdb connected")).Sub(d.Started)
	r.load = logTime(b, d.logLine(b, "model loaded")).Sub(d.Started)
	if mods := d.Metric(b, "ofctl_agent_flow_mods_total"); r.flowMods != 0 || mods != 0 {
		b.Fatalf("%s start: first Sync sent %d flow_mods (/metrics: %v), want 0", name, r.flowMods, mods)
	}
	e.checkFlows(b, name+" start", w)
	return d, r
}

// checkFlows requires br-int to hold the whole pipeline of benchEndpoints
// endpoints now (ovs-ofctl dump-aggregate) and OVS's monitor to have
// reported no flow change since w started: not even one flow re-added as
// it was.
func (e *agentBed) checkFlows(b *testing.B, when string, w *eventWatch) {
	b.Helper()
	if got, want := e.flowCount(), pipelineFlows(benchEndpoints); got != want {
		b.Fatalf("%s: br-int holds %d flows, want %d", when, got, want)
	}
	if n := w.total(); n != 0 {
		b.Fatalf("%s: OVS reported %d flow changes, want none", when, n)
	}
}

// ovsdbSelect runs one ovsdb-client select of the Interface and Port rows
// and returns its wall time and the client's own CPU (user + system); the
// rest of the wall time is mostly ovsdb-server.
func (e *agentBed) ovsdbSelect(b *testing.B) (wall, cpu time.Duration) {
	b.Helper()
	return e.timedSelect(b, ovsdbSelectTxn, 2, 1, 0)
}

// waitMarked waits until every endpoint's Interface carries its installed
// mark (read with ovsdb-client every second, to burden ovsdb-server little)
// and returns how long after start the last mark was committed, by
// OVSDB's own log.
func (e *agentBed) waitMarked(b *testing.B, start time.Time, timeout time.Duration) time.Duration {
	b.Helper()
	for n := 0; n < benchEndpoints; n = e.markedCount(b) {
		if time.Since(start) > timeout {
			b.Fatalf("%d of %d endpoints marked installed after %v", n, benchEndpoints, timeout)
		}
		time.Sleep(time.Second)
	}
	var last time.Time
	for _, r := range e.node.DBLog(b) {
		if r.Touches(endpoint.KeyInstalled) {
			last = r.Time
		}
	}
	return last.Sub(start.UTC().Truncate(time.Millisecond))
}

// markedCount counts the interfaces whose installed mark is their address.
func (e *agentBed) markedCount(b *testing.B) int {
	b.Helper()
	out, err := exec.Command("ovsdb-client", "--format=json", "dump", e.node.DBAddr(), "Open_vSwitch", "Interface", "external_ids").Output()
	if err != nil {
		b.Fatalf("ovsdb-client dump: %v", err)
	}
	var table struct {
		Data [][]json.RawMessage `json:"data"` // rows of one cell: ["map", [[k, v], ...]]
	}
	if err := json.Unmarshal(out, &table); err != nil {
		b.Fatalf("ovsdb-client dump: %v: %.300s", err, out)
	}
	n := 0
	for _, row := range table.Data {
		var cell []json.RawMessage
		var pairs [][2]string
		if len(row) != 1 || json.Unmarshal(row[0], &cell) != nil || len(cell) != 2 || json.Unmarshal(cell[1], &pairs) != nil {
			b.Fatalf("ovsdb-client dump: row %s", row)
		}
		ids := map[string]string{}
		for _, p := range pairs {
			ids[p[0]] = p[1]
		}
		if endpoint.HeldAddress(ids) {
			n++
		}
	}
	return n
}

// unmark removes endpoint i's installed mark by hand (the agent is not
// running) and returns the length of OVSDB's log before that.
func (e *agentBed) unmark(b *testing.B, i int) int {
	b.Helper()
	at := len(e.node.DBLog(b))
	e.node.Vsctl(b, "remove", "interface", portName(i), "external_ids", endpoint.KeyInstalled)
	return at
}

// checkMarkWrites waits until endpoint i is marked again and requires
// OVSDB's log since the record since to hold, besides the hand edit, one
// status write: that of endpoint i's row alone.
func (e *agentBed) checkMarkWrites(b *testing.B, name string, since, i int) {
	b.Helper()
	testbed.Eventually(b, 30*time.Second, func() bool {
		return strings.Contains(e.node.Vsctl(b, "get", "interface", portName(i), "external_ids"), endpoint.KeyInstalled)
	}, "%s start: the removed mark of %s never came back", name, portName(i))
	log := e.node.DBLog(b)
	if len(log) < since {
		b.Fatalf("%s start: ovsdb-server compacted its log: writes cannot be counted", name)
	}
	var rows []string // the hand edit, then the agent's writes
	for _, r := range log[since:] {
		rows = append(rows, r.RowsTouching(endpoint.KeyInstalled)...)
		rows = append(rows, r.RowsTouching(endpoint.KeyError)...)
	}
	if want := []string{portName(i), portName(i)}; !slices.Equal(rows, want) {
		b.Fatalf("%s start: status rows written since the hand edit: %v; want %v (the edit, then the mark written back alone)", name, rows, want)
	}
}
