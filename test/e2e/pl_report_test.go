package e2e

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// plOwner is an object of a host's state and the flows it should own.
type plOwner struct {
	name string
	want int
}

// owners maps each cookie of host hi's state to its object, with the flow
// counts docs/pipeline.md states.
func (b *plBed) owners(hi int) map[uint64]plOwner {
	s := b.states[hi]
	owners := map[uint64]plOwner{pipeline.FixedCookie(): {"fixed", 8}}
	for _, nw := range s.Networks {
		owners[nw.Cookie()] = plOwner{"network " + nw.Name, 1}
	}
	for _, e := range s.Endpoints {
		want := 5
		if !arp.IsDerived(e.MAC, e.IP) {
			want = 6
		}
		owners[e.Cookie()] = plOwner{fmt.Sprintf("endpoint %s (%s %s)", e.Port, e.IP, e.MAC), want}
	}
	for _, h := range s.Hosts {
		owners[h.Cookie()] = plOwner{"remote host " + h.Name, 1 + 2*len(h.Ranges)}
	}
	return owners
}

// testFlowsPerObject measures, from dump-flows, how many flows each object
// owns (grouped by cookie) and checks the numbers docs/pipeline.md states.
func (b *plBed) testFlowsPerObject(t *testing.T) {
	for hi, n := range b.nodes {
		owners := b.owners(hi)
		counts := map[uint64]int{}
		lines := plFlowsNoStats(t, n)
		for _, l := range lines {
			c, err := plCookie(l)
			if err != nil {
				t.Errorf("%s: %v", n.Name, err)
			}
			counts[c&pipeline.ObjectMask]++ // an object's flows, whatever their role
		}
		var report []string
		for c, got := range counts {
			o, ok := owners[c]
			if !ok {
				t.Errorf("%s: %d flows with unknown cookie %#x", n.Name, got, c)
				continue
			}
			report = append(report, fmt.Sprintf("%s: %d flows (cookie %#x, category %d)", o.name, got, c, c>>40&0xff))
			if got != o.want {
				t.Errorf("%s: %s has %d flows, want %d", n.Name, o.name, got, o.want)
			}
		}
		if len(counts) != len(owners) {
			t.Errorf("%s: %d cookies in OVS, %d objects in the state", n.Name, len(counts), len(owners))
		}
		slices.Sort(report)
		t.Logf("%s: %d flows\n  %s", n.Name, len(lines), strings.Join(report, "\n  "))
	}
}

// testAgentStopped: closing the OpenFlow connections (the agent stops)
// changes nothing: fail_mode stays secure, the flows stay, pings work.
func (b *plBed) testAgentStopped(t *testing.T) {
	before := make([][]string, len(b.nodes))
	for i, n := range b.nodes {
		if fm := strings.TrimSpace(n.Vsctl(t, "get", "bridge", "br-int", "fail_mode")); fm != "secure" {
			t.Errorf("%s: fail_mode %q, want secure", n.Name, fm)
		}
		before[i] = plFlowsNoStats(t, n)
	}
	for _, c := range b.conns {
		_ = c.Close()
		<-c.Done()
	}
	time.Sleep(2 * time.Second)
	for i, n := range b.nodes {
		if after := plFlowsNoStats(t, n); !slices.Equal(after, before[i]) {
			t.Errorf("%s: flows changed after the connection closed:\nbefore:\n%s\nafter:\n%s", n.Name,
				strings.Join(before[i], "\n"), strings.Join(after, "\n"))
		}
		if fm := strings.TrimSpace(n.Vsctl(t, "get", "bridge", "br-int", "fail_mode")); fm != "secure" {
			t.Errorf("%s: fail_mode %q after the agent stopped, want secure", n.Name, fm)
		}
	}
	pairs := []plPair{{b.ep("ablue1"), b.ep("bblue2")}, {b.ep("bred1"), b.ep("ared2")}, {b.ep("ablue2"), b.ep("ablue1")}}
	for i, r := range plPingAll(pairs) {
		if !r.ok {
			t.Errorf("ping %s after the agent stopped failed:\n%s\n%s", pairs[i], r.output,
				plDiagnose(t, b.nodes[pairs[i].from.host], plTracePacket(pairs[i].from, pairs[i].to)))
		}
	}
}

// plCookie reads the cookie of a dump-flows line.
func plCookie(line string) (uint64, error) {
	v, ok := strings.CutPrefix(line, "cookie=")
	v, _, found := strings.Cut(v, ",")
	if !ok || !found {
		return 0, fmt.Errorf("flow without cookie: %s", line)
	}
	return strconv.ParseUint(v, 0, 64)
}

func plMustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}
