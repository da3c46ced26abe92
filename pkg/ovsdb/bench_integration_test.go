package ovsdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// benchPorts is how many dummy interfaces the bridge holds before the
// measured port adds.
const benchPorts = 5000

// BenchmarkAddPortAtScale measures, with benchPorts dummy interfaces on the
// bridge, the time from AddPort to its Added event.
func BenchmarkAddPortAtScale(b *testing.B) {
	n := testbed.NewNode(b, "bench")
	c, err := New(Config{Endpoint: n.DBAddr(), NodeName: n.Name, Bridge: BridgeConfig{DatapathType: "netdev"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	defer func() { c.Close(); <-done }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.EnsureBridge(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < benchPorts; i += 1000 {
		if err := benchInsert(ctx, c, i, min(i+1000, benchPorts)); err != nil {
			b.Fatal(err)
		}
	}
	sub := c.Subscribe()
	defer sub.Close()
	seen := 0
	for seen < benchPorts+1 { // the local port, then the dummies
		select {
		case b := <-sub.C():
			for _, ev := range b {
				if ev.Kind == Added {
					seen++
				}
			}
		case <-ctx.Done():
			b.Fatalf("%d of %d interfaces seen", seen, benchPorts+1)
		}
	}
	load := time.Since(start)
	time.Sleep(2 * time.Second) // let vswitchd's ofport updates pass
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := "bench" + strconv.Itoa(i)
		// no such device: ofport -1, still an Added event
		if err := c.AddPort(ctx, PortSpec{Name: name}); err != nil {
			b.Fatal(err)
		}
	wait:
		for b := range sub.C() {
			for _, ev := range b {
				if ev.Kind == Added && ev.Interface.Name == name {
					break wait
				}
			}
		}
	}
	b.ReportMetric(float64(load.Milliseconds()), "load-ms")
}

// benchInsert adds dummy ports d<from>..d<to-1> in one transaction.
func benchInsert(ctx context.Context, c *Client, from, to int) error {
	return c.withConn(ctx, func(cl client.Client) error {
		r, err := readRows(ctx, cl, "")
		if err != nil {
			return err
		}
		br := r.bridge(c.cfg.Bridge.Name)
		if br == nil {
			return ErrBridgeNotFound
		}
		var ops []ovsdb.Operation
		var ports []string
		for i := from; i < to; i++ {
			iface := &ifaceRow{UUID: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("d%d", i), Type: "dummy"}
			port := &portRow{UUID: fmt.Sprintf("p%d", i), Name: iface.Name, Interfaces: []string{iface.UUID}}
			o, err := cl.Create(iface, port)
			if err != nil {
				return err
			}
			ops, ports = append(ops, o...), append(ports, port.UUID)
		}
		mut, err := cl.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: ports})
		if err != nil {
			return err
		}
		return transact(ctx, cl, append(ops, mut...))
	})
}
