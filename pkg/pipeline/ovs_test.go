package pipeline

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow/flowtest"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// installed starts a private OVS, installs Build(s) into br-int through the
// test sender and returns the node and connection.
func installed(t *testing.T, s State) (*testbed.Node, *flowtest.Conn) {
	t.Helper()
	testbed.Require(t)
	n := testbed.NewNode(t, "pipe")
	n.AddBridge(t, "br-int")
	c := flowtest.Dial(t, n.MgmtAddr("br-int"))
	if err := c.Install(Build(s)...); err != nil {
		t.Fatal(err)
	}
	return n, c
}

// sortedLines splits a dump into lines, dropping empty ones, and sorts them.
func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestOVSGolden installs each golden topology into a real bridge and checks
// that `ovs-ofctl -O OpenFlow13 dump-flows --no-stats br-int` prints exactly
// the golden file (as sorted sets of lines: OVS orders flows of equal
// priority its own way), and that the flows read back through flow stats
// have the keys and contents of the desired flows.
func TestOVSGolden(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			n, c := installed(t, tp.state())
			golden, err := os.ReadFile(goldenPath(tp.name))
			if err != nil {
				t.Fatal(err)
			}
			got := sortedLines(n.Ofctl(t, "dump-flows", "--no-stats", "br-int"))
			if want := sortedLines(string(golden)); !slices.Equal(got, want) {
				t.Errorf("OVS dump differs from %s:\n got:\n%s\nwant:\n%s", goldenPath(tp.name),
					strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			checkReadBack(t, c, Build(tp.state()))
		})
	}
}

func checkReadBack(t *testing.T, c *flowtest.Conn, desired []flow.Flow) {
	t.Helper()
	stats, err := c.DumpFlows()
	if err != nil {
		t.Fatal(err)
	}
	want := map[flow.Key]flow.Flow{}
	for _, f := range desired {
		want[f.Key()] = f
	}
	if len(stats) != len(desired) {
		t.Errorf("OVS has %d flows, want %d", len(stats), len(desired))
	}
	for _, s := range stats {
		f, ok := want[s.Key()]
		switch {
		case !ok:
			t.Errorf("flow in OVS has no desired counterpart (table %d priority %d)", s.Table, s.Priority)
		case s.Content() != f.Content():
			t.Errorf("content differs for %s", f)
		default:
			if g, err := s.Flow(); err != nil || g.String() != f.String() {
				t.Errorf("read back %v (%v), want %s", g, err, f)
			}
		}
	}
}
