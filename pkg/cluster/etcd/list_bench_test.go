package etcd

import (
	"context"
	"fmt"
	"net/netip"
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
	var ops []clientv3.Op
	ops = append(ops, clientv3.OpPut(tk.network("blue"), `{"version":1,"vni":100,"subnet":"10.0.0.0/8"}`))
	for h := range 1000 {
		host := fmt.Sprintf("h%04d", h)
		ops = append(ops, clientv3.OpPut(tk.host(host), fmt.Sprintf(`{"version":1,"tunnel_ip":"172.16.%d.%d","claims_layout":true}`, h>>8, h&255)))
		for j := range 100 {
			n := h*100 + j + 1
			ip := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			ops = append(ops, clientv3.OpPut(tk.endpoint("blue", ip, host), fmt.Sprintf(`{"version":1,"mac":"02:00:00:%02x:%02x:%02x"}`, n>>16, (n>>8)&255, n&255)))
		}
	}
	for i := 0; i < len(ops); i += 100 {
		if _, err := c.Txn(ctx).Then(ops[i:min(i+100, len(ops))]...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("floor", func(b *testing.B) {
		for range b.N {
			resp, err := c.Get(ctx, tk.root(), clientv3.WithPrefix())
			if err != nil || len(resp.Kvs) != len(ops) {
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
