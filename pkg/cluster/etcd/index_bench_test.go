package etcd

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
)

// benchIndex is an index of hosts x perHost endpoints, resolved.
func benchIndex(b *testing.B, hosts, perHost int) *index {
	b.Helper()
	x := newIndex(tk, nil, nil)
	x.put(tk.network("blue"), []byte(`{"version":1,"vni":100,"subnet":"10.0.0.0/8"}`), 1)
	for h := range hosts {
		x.put(tk.host(fmt.Sprintf("h%04d", h)), []byte(fmt.Sprintf(`{"version":1,"tunnel_ip":"172.16.%d.%d","claims_layout":true}`, h>>8, h&255)), 2)
		for j := range perHost {
			n := h*perHost + j + 1
			ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			x.put(tk.endpoint("blue", ip, fmt.Sprintf("h%04d", h)), []byte(fmt.Sprintf(`{"version":1,"mac":"02:00:00:%02x:%02x:%02x"}`, n>>16, (n>>8)&255, n&255)), int64(3+n))
		}
	}
	x.resolve()
	return x
}

// BenchmarkIndexLoad: building the view of 1,000 hosts x 100 endpoints
// from scratch (the initial list, or a re-list after a compaction).
func BenchmarkIndexLoad(b *testing.B) {
	for range b.N {
		benchIndex(b, 1000, 100)
	}
}

// BenchmarkIndexOneChange: one endpoint's MAC changes in a view of 100,000
// endpoints; the set copies one chunk and the chunk table (EndpointSet).
func BenchmarkIndexOneChange(b *testing.B) {
	x := benchIndex(b, 1000, 100)
	key := tk.endpoint("blue", netip.MustParseAddr("10.0.0.1"), "h0000")
	b.ResetTimer()
	for i := range b.N {
		x.put(key, []byte(fmt.Sprintf(`{"version":1,"mac":"02:00:01:00:00:%02x"}`, i&255|2)), 4)
		if !x.resolve() {
			b.Fatal("no change")
		}
	}
}

// BenchmarkIndexHostGone: a host and its 100 endpoints vanish (lease
// expiry) and come back, in a view of 100,000 endpoints.
func BenchmarkIndexHostGone(b *testing.B) {
	x := benchIndex(b, 1000, 100)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			x.del(tk.host("h0500"))
		} else {
			x.put(tk.host("h0500"), []byte(`{"version":1,"tunnel_ip":"172.16.1.244","claims_layout":true}`), 2)
		}
		x.resolve()
	}
}

// loadRecords are the keys and values of 1,000 hosts x 100 endpoints, as
// a range read returns them (benchmarks of the load alone).
func loadRecords(hosts, perHost int) (keys []string, values [][]byte) {
	keys = append(keys, tk.network("blue"))
	values = append(values, []byte(`{"version":1,"vni":100,"subnet":"10.0.0.0/8"}`))
	for h := range hosts {
		host := fmt.Sprintf("h%04d", h)
		keys = append(keys, tk.host(host))
		values = append(values, []byte(fmt.Sprintf(`{"version":1,"tunnel_ip":"172.16.%d.%d","claims_layout":true}`, h>>8, h&255)))
		for j := range perHost {
			n := h*perHost + j + 1
			ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			keys = append(keys, tk.endpoint("blue", ip, host))
			values = append(values, EncodeEndpoint([]byte{2, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}))
		}
	}
	return keys, values
}

// BenchmarkIndexBuild: the index and view of 1,000 hosts x 100 endpoints
// from records already read (what the initial list adds to the range read).
// It reports what the index and its view keep after a GC (index-MB).
func BenchmarkIndexBuild(b *testing.B) {
	keys, values := loadRecords(1000, 100)
	var x *index
	before := liveHeap()
	b.ResetTimer()
	for range b.N {
		x = newIndex(tk, nil, nil)
		x.expect(len(keys))
		for i, k := range keys {
			x.put(k, values[i], int64(i+1))
		}
		x.resolve()
		if x.endpoints.Len() != 100000 {
			b.Fatalf("%d endpoints", x.endpoints.Len())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(liveHeap()-before)/1e6, "index-MB")
	runtime.KeepAlive(x)
	runtime.KeepAlive(keys) // in before too: not the index's
	runtime.KeepAlive(values)
}

// liveHeap is the live heap after a full GC, in bytes.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
