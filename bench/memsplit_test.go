package bench

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// memSplit is where an agent's resident memory goes, in MiB: the Go
// runtime's view from its /metrics (one scrape) and the kernel's from
// /proc/PID/status.
type memSplit struct {
	rss, rssAnon, rssFile, peak float64 // kernel: resident, of it anonymous / file-backed (the binary), VmHWM
	live                        float64 // heap objects (heap_alloc)
	inuse                       float64 // heap spans in use: live + their free slots (fragmentation)
	free                        float64 // heap spans free and not returned to the OS (idle - released): GC headroom kept
	released                    float64 // heap returned to the OS (not resident)
	stacks                      float64 // goroutine stacks
	runtime                     float64 // the runtime's own structures (GC metadata, spans, other)
}

// memorySplit reads the split without forcing a collection (call memory
// first for the figures after a forced GC).
func (d *daemon) memorySplit(b *testing.B) memSplit {
	b.Helper()
	code, body, err := d.Get("/metrics")
	if err != nil || code != http.StatusOK {
		b.Fatalf("/metrics: %d %v %.200s", code, err, body)
	}
	m := func(name string) float64 {
		v, err := testbed.Sample(body, name)
		if err != nil {
			b.Fatal(err)
		}
		return v / (1 << 20)
	}
	pid := strconv.Itoa(d.Pid())
	return memSplit{
		rss:      m("process_resident_memory_bytes"),
		rssAnon:  procStatusMiB(b, pid, "RssAnon"),
		rssFile:  procStatusMiB(b, pid, "RssFile"),
		peak:     procStatusMiB(b, pid, "VmHWM"),
		live:     m("go_memstats_heap_alloc_bytes"),
		inuse:    m("go_memstats_heap_inuse_bytes"),
		free:     m("go_memstats_heap_idle_bytes") - m("go_memstats_heap_released_bytes"),
		released: m("go_memstats_heap_released_bytes"),
		stacks:   m("go_memstats_stack_inuse_bytes"),
		runtime: m("go_memstats_mspan_sys_bytes") + m("go_memstats_mcache_sys_bytes") +
			m("go_memstats_gc_sys_bytes") + m("go_memstats_other_sys_bytes") + m("go_memstats_buck_hash_sys_bytes"),
	}
}

// report prints the split as benchmark metrics whose names end in suffix.
func (s memSplit) report(b *testing.B, suffix string) {
	b.ReportMetric(s.rssAnon, "rss-anon-MiB"+suffix)
	b.ReportMetric(s.rssFile, "rss-file-MiB"+suffix)
	b.ReportMetric(s.inuse-s.live, "heap-frag-MiB"+suffix)
	b.ReportMetric(s.free, "heap-free-MiB"+suffix)
	b.ReportMetric(s.released, "heap-released-MiB"+suffix)
	b.ReportMetric(s.stacks, "stacks-MiB"+suffix)
	b.ReportMetric(s.runtime, "runtime-MiB"+suffix)
}
