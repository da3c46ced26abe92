package etcd

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
)

// BenchmarkList: the source's initial list of 1,000 hosts x 100 endpoint
// records from a real (embedded) etcd, by page size, next to one range
// read of the same keys without the index (the floor).
func BenchmarkList(b *testing.B) {
	srv := etcdtest.Start(b)
	c := srv.Client(b)
	ctx := context.Background()
	n := fillFleet(b, c, []string{"blue"})
	b.Run("floor", func(b *testing.B) {
		for range b.N {
			resp, err := c.Get(ctx, tk.root(), clientv3.WithPrefix())
			if err != nil || len(resp.Kvs) != n {
				b.Fatalf("%v, %d keys", err, len(resp.Kvs))
			}
		}
	})
	for _, page := range []int64{0, 2000, 50000} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			s, err := New(Config{Client: c, Prefix: tk.prefix, PageSize: page})
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				x, _, err := s.list(ctx, nil)
				if err != nil || x.endpoints.Len() != 100000 {
					b.Fatalf("%v", err)
				}
			}
		})
	}
}

// fillFleet writes 1,000 host records and 100 claims of each host, spread
// over networks (network i is 10+i.0.0.0/8), in transactions of 100; it
// returns how many keys it wrote.
func fillFleet(b *testing.B, c *clientv3.Client, networks []string) int {
	b.Helper()
	var ops []clientv3.Op
	for i, name := range networks {
		ops = append(ops, clientv3.OpPut(tk.network(name), fmt.Sprintf(`{"version":1,"vni":%d,"subnet":"%d.0.0.0/8"}`, 100+i, 10+i)))
	}
	for h := range 1000 {
		host := fmt.Sprintf("h%04d", h)
		ops = append(ops, clientv3.OpPut(tk.host(host), fmt.Sprintf(`{"version":1,"tunnel_ip":"172.16.%d.%d","claims_layout":true}`, h>>8, h&255)))
		for j := range 100 {
			n := h*100 + j + 1
			i := j % len(networks)
			ip := netip.AddrFrom4([4]byte{byte(10 + i), byte(n >> 16), byte(n >> 8), byte(n)})
			ops = append(ops, clientv3.OpPut(tk.endpoint(networks[i], ip, host), fmt.Sprintf(`{"version":1,"mac":"02:00:00:%02x:%02x:%02x"}`, n>>16, (n>>8)&255, n&255)))
		}
	}
	for i := 0; i < len(ops); i += 100 {
		if _, err := c.Txn(context.Background()).Then(ops[i:min(i+100, len(ops))]...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return len(ops)
}

// BenchmarkCatchUp: what a watch of a scoped Source that fell behind a
// compaction costs, with 1,000 hosts x 100 endpoints in 10 networks, all
// loaded: "network" lists one network's claims again into the index
// (Source.relist) and settles it, as a compaction behind that network's
// watch does now; "all" lists every range into a new index and settles
// it, as a compaction behind any watch did before (a new session).
// read-MB is the keys and values etcd sent.
func BenchmarkCatchUp(b *testing.B) {
	srv := etcdtest.Start(b)
	c := srv.Client(b)
	ctx := context.Background()
	var networks []string
	for i := range 10 {
		networks = append(networks, fmt.Sprintf("n%d", i))
	}
	fillFleet(b, c, networks)
	reads := &sizingKV{KV: c.KV}
	c.KV = reads
	s, err := New(Config{Client: c, Prefix: tk.prefix, Scoped: true})
	if err != nil {
		b.Fatal(err)
	}
	// loadAll lists every range into a new index, as a session starts.
	loadAll := func() *index {
		x := newIndex(s.keys, nil, nil)
		if _, err := s.listSpan(ctx, x, s.keys.baseSpan(), true, nil); err != nil {
			b.Fatal(err)
		}
		for _, n := range networks {
			if _, err := s.listSpan(ctx, x, s.keys.claimSpan(n), false, nil); err != nil {
				b.Fatal(err)
			}
		}
		x.resolve()
		if x.endpoints.Len() != 100000 {
			b.Fatalf("%d endpoints", x.endpoints.Len())
		}
		return x
	}
	b.Run("all", func(b *testing.B) {
		reads.bytes.Store(0)
		for range b.N {
			loadAll()
		}
		b.ReportMetric(float64(reads.bytes.Load())/1e6/float64(b.N), "read-MB")
	})
	b.Run("network", func(b *testing.B) {
		x := loadAll()
		reads.bytes.Store(0)
		b.ResetTimer()
		for range b.N {
			if _, err := s.relist(ctx, x, s.keys.claimSpan("n3")); err != nil {
				b.Fatal(err)
			}
			if x.resolve() || x.endpoints.Len() != 100000 {
				b.Fatalf("the view changed: %d endpoints", x.endpoints.Len())
			}
		}
		b.ReportMetric(float64(reads.bytes.Load())/1e6/float64(b.N), "read-MB")
	})
}

// sizingKV adds up the keys and values a client's range reads return.
type sizingKV struct {
	clientv3.KV
	bytes atomic.Int64
}

func (k *sizingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if err == nil {
		for _, kv := range resp.Kvs {
			k.bytes.Add(int64(len(kv.Key) + len(kv.Value)))
		}
	}
	return resp, err
}
