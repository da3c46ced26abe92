package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// Independent observers: long-running OVS tools whose output lines are
// timestamped as they arrive, so the harness sees when OVS changed without
// polling (polling with a new ovs-ofctl every few ms costs a share of the
// two cores and slows what it measures).

// ofportWatch is an independent observer of when ovs-vswitchd writes an
// interface's ofport to OVSDB: an `ovsdb-client monitor` of Interface
// name,ofport whose lines are timestamped as they arrive.
type ofportWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time // port -> first time it had an ofport
}

func (e *agentBed) watchOFPorts(b *testing.B) *ofportWatch {
	b.Helper()
	w := &ofportWatch{seen: map[string]time.Time{}}
	cmd := exec.Command("ovsdb-client", "monitor", e.node.DBAddr(), "Open_vSwitch", "Interface", "name,ofport", "--format=csv")
	follow(b, cmd, func(now time.Time, line string) {
		// row,action,name,ofport: "<uuid>,insert,d1,[]" or ",new,d1,7".
		f := strings.Split(line, ",")
		if len(f) != 4 || (f[1] != "new" && f[1] != "insert" && f[1] != "initial") {
			return
		}
		if n, err := strconv.Atoi(f[3]); err == nil && n > 0 {
			w.mu.Lock()
			if _, ok := w.seen[f[2]]; !ok {
				w.seen[f[2]] = now
			}
			w.mu.Unlock()
		}
	})
	return w
}

// when returns the time port first had an ofport, if seen yet.
func (w *ofportWatch) when(port string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[port]
	return t, ok
}

// flowWatch is an independent observer of flows being added to br-int: an
// `ovs-ofctl monitor br-int watch:!initial` (OVS's flow monitor, the ONF
// extension for OpenFlow 1.3), counting ADDED events per cookie.
type flowWatch struct {
	mu    sync.Mutex
	added map[uint64]int       // cookie -> flows added
	last  map[uint64]time.Time // cookie -> time of its last ADDED event
}

func (e *agentBed) watchFlows(b *testing.B) *flowWatch {
	b.Helper()
	w := &flowWatch{added: map[uint64]int{}, last: map[uint64]time.Time{}}
	follow(b, flowMonitor(e.node.Dir), func(now time.Time, line string) {
		// " event=ADDED table=1 cookie=0xfca0030012345678 in_port=7 ..."
		if !strings.HasPrefix(line, " event=ADDED ") {
			return
		}
		i := strings.Index(line, " cookie=")
		if i < 0 {
			return
		}
		var c uint64
		if _, err := fmt.Sscanf(line[i+len(" cookie="):], "%v", &c); err != nil {
			return
		}
		c &= pipeline.ObjectMask // an object's flows may carry role bits
		w.mu.Lock()
		w.added[c]++
		w.last[c] = now
		w.mu.Unlock()
	})
	return w
}

// seen returns how many flows of cookie's object (role bits aside) were
// added and when the last was.
func (w *flowWatch) seen(cookie uint64) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.added[cookie], w.last[cookie]
}

// flowMonitor is `ovs-ofctl monitor br-int watch:!initial` against the OVS
// of the node whose run directory is dir: OVS's flow monitor (the ONF
// extension for OpenFlow 1.3), pushed by ovs-vswitchd as it applies changes.
func flowMonitor(dir string) *exec.Cmd {
	cmd := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "monitor", agentBridge, "watch:!initial")
	cmd.Env = append(cmd.Environ(), "OVS_RUNDIR="+dir)
	return cmd
}

// follow starts cmd and hands each line of its output (stdout and stderr:
// ovs-ofctl monitor prints the messages it receives to stderr), with its
// arrival time, to f on one goroutine. stop kills the process (by its pid)
// and returns once f has had the last line; it may be called more than
// once, and runs in b's cleanup.
func follow(b *testing.B, cmd *exec.Cmd, f func(now time.Time, line string)) (stop func()) {
	b.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		b.Fatal(err)
	}
	done := make(chan struct{})
	stop = sync.OnceFunc(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); <-done; r.Close() })
	b.Cleanup(stop)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f(time.Now(), sc.Text())
		}
	}()
	return stop
}
