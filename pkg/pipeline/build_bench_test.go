package pipeline

import (
	"testing"

	"github.com/contiv/libOpenflow/openflow13"
)

// BenchmarkEncodeReference builds the reference topology's flows and
// computes what the agent computes per flow: key, content and the ADD
// flow_mod's bytes.
func BenchmarkEncodeReference(b *testing.B) {
	s := Reference()
	b.ReportAllocs()
	for range b.N {
		for _, f := range Build(s) {
			_, _ = f.Key(), f.Content()
			fm, err := f.FlowMod(openflow13.FC_ADD)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := fm.MarshalBinary(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
