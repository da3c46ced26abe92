package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks observe processes (ovs-vswitchd, the agent, the test
// process itself) from outside, through /proc.

// procCPU is the user+system CPU time pid has used so far (/proc/PID/stat
// fields 14 and 15, in clock ticks of 10 ms).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	// Fields after the command name, which may hold spaces: f[0] is field 3.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatusMiB is a kB line of /proc/PID/status ("self" for this process),
// e.g. VmRSS or VmHWM, in MiB.
func procStatusMiB(b *testing.B, pid, key string) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == key+":" && f[2] == "kB" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%s/status", key, pid)
	return 0
}

// memory returns the test process's resident set (VmRSS) and its live Go
// heap after a GC, in MiB. The process holds the agent and the harness.
func memory(b *testing.B) (rss, heap float64) {
	b.Helper()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return procStatusMiB(b, "self", "VmRSS"), float64(m.HeapAlloc) / (1 << 20)
}
