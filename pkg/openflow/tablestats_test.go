package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// tableStatsEntry is an OpenFlow 1.3 ofp_table_stats.
func tableStatsEntry(id uint8, active uint32, lookups, matched uint64) []byte {
	b := make([]byte, tableStatsLen)
	b[0] = id
	binary.BigEndian.PutUint32(b[4:8], active)
	binary.BigEndian.PutUint64(b[8:16], lookups)
	binary.BigEndian.PutUint64(b[16:24], matched)
	return b
}

func TestParseTableStats(t *testing.T) {
	two := append(tableStatsEntry(0, 7, 100, 90), tableStatsEntry(253, 1<<31, 1<<40, 5)...)
	tests := []struct {
		name    string
		body    []byte
		want    []TableStats
		wantErr bool
	}{
		{"two tables", two, []TableStats{{0, 7, 100, 90}, {253, 1 << 31, 1 << 40, 5}}, false},
		{"empty", nil, []TableStats{}, false},
		{"truncated entry", two[:30], nil, true},
		{"OpenFlow 1.0 sized entry", make([]byte, 64), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTableStats(tt.body)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TableStats gathers every part of a reply and checks its type.
func TestConnTableStats(t *testing.T) {
	replies := map[string][][]byte{
		"two parts": {sw.MultipartReply(0, openflow13.MultipartType_Table, true, tableStatsEntry(0, 3, 0, 0)),
			sw.MultipartReply(0, openflow13.MultipartType_Table, false, tableStatsEntry(1, 4, 0, 0))},
		"wrong type": {sw.MultipartReply(0, openflow13.MultipartType_Port, false, nil)},
		"bad body":   {sw.MultipartReply(0, openflow13.MultipartType_Table, false, make([]byte, 10))},
	}
	for name, parts := range replies {
		t.Run(name, func(t *testing.T) {
			c, ss := dialFake(t, sw.Options{}, nil)
			ctx := testCtx(t)
			go func() {
				req, err := ss.Recv(ctx)
				for err == nil && req[1] != typeMultipartRequest {
					req, err = ss.Recv(ctx)
				}
				if err != nil || binary.BigEndian.Uint16(req[8:10]) != openflow13.MultipartType_Table {
					return
				}
				for _, p := range parts {
					binary.BigEndian.PutUint32(p[4:8], xidOf(req))
					_ = ss.Send(p)
				}
			}()
			got, err := c.TableStats(testCtx(t))
			if name != "two parts" {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || len(got) != 2 || got[0].ActiveCount != 3 || got[1].TableID != 1 || got[1].ActiveCount != 4 {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func FuzzTableStats(f *testing.F) {
	addOVSSeeds(f)
	f.Add(tableStatsEntry(1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, err := parseTableStats(in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

// Open vSwitch 3.1 answers with one entry per visible table (254: table
// 254 is hidden), and active_count is what ovs-ofctl dump-aggregate counts.
func TestOVSTableStats(t *testing.T) {
	n, addr := ovsNode(t)
	c := dialOVS(t, addr, nil)
	for i := range 5 {
		n.Ofctl(t, "add-flow", "br-int", fmt.Sprintf("table=3,priority=%d,cookie=0x%x,actions=drop", 100+i, i))
	}
	n.Ofctl(t, "add-flow", "br-int", "table=0,priority=0,actions=goto_table:3")
	stats, err := c.TableStats(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 254 {
		t.Errorf("%d tables, want 254", len(stats))
	}
	for i, s := range stats {
		if int(s.TableID) != i {
			t.Fatalf("entry %d is table %d", i, s.TableID)
		}
	}
	for _, table := range []int{0, 3, 4} {
		want, err := n.FlowCount("br-int", fmt.Sprintf("table=%d", table))
		if err != nil {
			t.Fatal(err)
		}
		if got := int(stats[table].ActiveCount); got != want || table == 3 && want != 5 {
			t.Errorf("table %d: active_count %d, ovs-ofctl dump-aggregate flow_count %d", table, got, want)
		}
	}
}
