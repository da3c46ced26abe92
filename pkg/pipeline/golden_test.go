package pipeline

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from Build")

func goldenPath(name string) string { return filepath.Join("testdata", name+".golden") }

// TestGolden compares Build's flows, printed as ovs-ofctl dump-flows prints
// them, with testdata/<topology>.golden.
func TestGolden(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			if err := validateState(tp.state()); err != nil {
				t.Fatalf("topology is invalid: %v", err)
			}
			got := flow.Dump(Build(tp.state()))
			if *update {
				if err := os.WriteFile(goldenPath(tp.name), []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath(tp.name))
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("flows differ from %s (run go test -update and review the diff):\n%s", goldenPath(tp.name), got)
			}
		})
	}
}
