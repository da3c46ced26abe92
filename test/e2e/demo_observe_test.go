package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The demo's observers: `ip netns`, /proc and the file system, never the
// demo script's own bookkeeping alone.

// dmNames are the namespaces a complete demo instance has, after its prefix.
var dmNames = []string{"a1", "a2", "a3", "b1", "b2", "host-a", "host-b", "out"}

// dmDaemons are the pidfiles each demo host holds while the demo is up.
var dmDaemons = []string{"ovsdb-server.pid", "ovs-vswitchd.pid", "agent.pid"}

// dmProc is a process, told apart from a later one with the same pid by its
// start time.
type dmProc struct {
	pid   int
	start string // field 22 of /proc/PID/stat, clock ticks after boot
	cmd   string
}

// dmProcOf reads a live process; false when it is gone or a zombie.
func dmProcOf(pid int) (dmProc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return dmProc{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return dmProc{}, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state), f[19] field 22 (starttime)
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return dmProc{}, false
	}
	cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return dmProc{pid: pid, start: f[19], cmd: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))}, true
}

// alive reports whether the same process still runs.
func (p dmProc) alive() bool {
	q, ok := dmProcOf(p.pid)
	return ok && q.start == p.start
}

func (p dmProc) String() string { return fmt.Sprintf("pid %d (%s)", p.pid, p.cmd) }

// dmSnapshot is what the observers saw of one demo instance while it ran.
type dmSnapshot struct {
	inst       dmInstance
	namespaces []string          // `ip netns list`, the instance's prefix
	nsInodes   map[uint64]string // network namespace inode -> name
	procs      []dmProc          // the run dir's pidfiles and `ip netns pids` of its namespaces
}

// dmObserve records the instance's namespaces and processes.
func dmObserve(t *testing.T, inst dmInstance) *dmSnapshot {
	t.Helper()
	s := &dmSnapshot{inst: inst, namespaces: dmNamespaces(t, inst.nsPrefix), nsInodes: map[uint64]string{}}
	for _, ns := range s.namespaces {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/var/run/netns", ns), &st); err == nil {
			s.nsInodes[st.Ino] = ns
		}
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			s.add(f)
		}
	}
	pidfiles, _ := filepath.Glob(filepath.Join(inst.runDir, "*", "*.pid"))
	for _, pf := range pidfiles {
		if b, err := os.ReadFile(pf); err == nil {
			s.add(strings.TrimSpace(string(b)))
		}
	}
	return s
}

func (s *dmSnapshot) add(pidText string) {
	pid, err := strconv.Atoi(pidText)
	if err != nil || slices.ContainsFunc(s.procs, func(p dmProc) bool { return p.pid == pid }) {
		return
	}
	if p, ok := dmProcOf(pid); ok {
		s.procs = append(s.procs, p)
	}
}

// dmNamespaces lists the namespaces with prefix, as `ip netns list` shows them.
func dmNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	slices.Sort(names)
	return names
}

// requireUp checks that the instance is complete and works: its eight
// namespaces, its daemons running, a ping from a1 to b1 across its tunnel.
func (s *dmSnapshot) requireUp(t *testing.T) {
	t.Helper()
	var want []string
	for _, n := range dmNames {
		want = append(want, s.inst.nsPrefix+n)
	}
	if got := dmNamespaces(t, s.inst.nsPrefix); !slices.Equal(got, want) {
		t.Fatalf("instance %s: namespaces %q, want %q", s.inst.id, got, want)
	}
	for _, h := range []string{"host-a", "host-b"} {
		for _, d := range dmDaemons {
			b, err := os.ReadFile(filepath.Join(s.inst.runDir, h, d))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if p, ok := dmProcOf(pid); err != nil || !ok || !slices.ContainsFunc(s.procs, func(q dmProc) bool { return q == p }) {
				t.Fatalf("instance %s: %s/%s: %v, pid %d not the running process seen before", s.inst.id, h, d, err, pid)
			}
		}
	}
	out, err := exec.Command("ip", "netns", "exec", s.inst.nsPrefix+"a1",
		"ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "10.100.2.1").CombinedOutput()
	if err != nil {
		t.Fatalf("instance %s: a1 cannot ping b1 (10.100.2.1): %v\n%s", s.inst.id, err, out)
	}
}

// requireGone checks that nothing the instance made is left: no namespace
// with its prefix (ip netns list and /var/run/netns), none of the processes
// seen, no process in one of its namespaces or naming its run dir, no run dir.
func (s *dmSnapshot) requireGone(t *testing.T) {
	t.Helper()
	var left []string
	if ns := dmNamespaces(t, s.inst.nsPrefix); len(ns) > 0 {
		left = append(left, fmt.Sprintf("namespaces %q", ns))
	}
	if files, _ := filepath.Glob(filepath.Join("/var/run/netns", s.inst.nsPrefix+"*")); len(files) > 0 {
		left = append(left, fmt.Sprintf("files %q", files))
	}
	for _, p := range s.procs {
		if p.alive() {
			left = append(left, p.String())
		}
	}
	left = append(left, s.strayProcesses()...)
	if _, err := os.Stat(s.inst.runDir); !errors.Is(err, os.ErrNotExist) {
		left = append(left, fmt.Sprintf("run dir %s (stat: %v)", s.inst.runDir, err))
	}
	if len(left) > 0 {
		t.Fatalf("instance %s left behind:\n  %s", s.inst.id, strings.Join(left, "\n  "))
	}
	t.Logf("instance %s gone: %d namespaces, %d processes and %s checked", s.inst.id, len(s.namespaces), len(s.procs), s.inst.runDir)
}

// strayProcesses scans /proc for live processes in one of the instance's
// network namespaces or with its run dir on their command line.
func (s *dmSnapshot) strayProcesses() []string {
	entries, _ := os.ReadDir("/proc")
	var stray []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		p, ok := dmProcOf(pid)
		if !ok {
			continue
		}
		link, _ := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		var ino uint64
		if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err == nil && s.nsInodes[ino] != "" {
			stray = append(stray, fmt.Sprintf("%s in namespace %s", p, s.nsInodes[ino]))
		} else if strings.Contains(p.cmd, s.inst.runDir) {
			stray = append(stray, fmt.Sprintf("%s naming %s", p, s.inst.runDir))
		}
	}
	return stray
}
