package testbed

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// DBRecord is one transaction in the node's database log (ovsdb-server
// appends every committed change to conf.db; ephemeral columns such as
// Interface statistics are not in it).
type DBRecord struct {
	N       int
	Time    time.Time // when ovsdb-server committed it (millisecond precision, UTC)
	Comment string    // the writer's comment, if it gave one
	Changes []string  // "table Interface row \"p1\" (69aefcd3) diff:" and the changed columns, one per line
}

// DBLog reads the node's database log with ovsdb-tool show-log -mm: an
// observer of every write to OVSDB, whoever made it.
func (n *Node) DBLog(t testing.TB) []DBRecord {
	t.Helper()
	out := mustRun(t, nil, "ovsdb-tool", "show-log", "-mm", n.path("conf.db"))
	var recs []DBRecord
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "record "); ok {
			num, tail, _ := strings.Cut(rest, ":")
			k, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("ovsdb-tool show-log: %q", line)
			}
			stamp, comment, _ := strings.Cut(strings.TrimSpace(tail), `"`)
			at, _ := time.Parse("2006-01-02 15:04:05.000", strings.TrimSpace(stamp)) // zero for the schema record
			recs = append(recs, DBRecord{N: k, Time: at, Comment: strings.TrimSuffix(comment, `"`)})
			continue
		}
		if l := strings.TrimSpace(line); l != "" && len(recs) > 0 {
			recs[len(recs)-1].Changes = append(recs[len(recs)-1].Changes, l)
		}
	}
	return recs
}

// Touches reports whether the record changes a line containing s (a
// column, a key, a row name).
func (r DBRecord) Touches(s string) bool {
	for _, c := range r.Changes {
		if strings.Contains(c, s) {
			return true
		}
	}
	return false
}

// RowsTouching returns the names of the rows whose changes in the record
// contain s ("table Interface row \"p1\" (69aefcd3) diff:" names p1), in
// order, once each.
func (r DBRecord) RowsTouching(s string) []string {
	var rows []string
	row := ""
	for _, c := range r.Changes {
		if rest, ok := strings.CutPrefix(c, "table "); ok {
			_, name, _ := strings.Cut(rest, ` row "`)
			row, _, _ = strings.Cut(name, `"`)
			continue
		}
		if strings.Contains(c, s) && (len(rows) == 0 || rows[len(rows)-1] != row) {
			rows = append(rows, row)
		}
	}
	return rows
}
