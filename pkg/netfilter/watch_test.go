package netfilter

import (
	"os"
	"testing"

	"github.com/google/nftables"
)

func TestRelevant(t *testing.T) {
	k := &Keeper{opt: Options{Table: DefaultTable}}
	ip := func(name string) *nftables.Table {
		return &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	}
	other := &nftables.MonitorEvent{Data: &nftables.GenMsg{ProcPID: 1 << 30}}
	change := func(data any) *nftables.MonitorEvents {
		return &nftables.MonitorEvents{GeneratedBy: other, Changes: []*nftables.MonitorEvent{{Data: data}}}
	}
	cases := []struct {
		name string
		ev   *nftables.MonitorEvents
		want bool
	}{
		{"our table", change(ip(DefaultTable)), true},
		{"our chain", change(&nftables.Chain{Name: "forward", Table: ip(DefaultTable)}), true},
		{"our rule", change(&nftables.Rule{Table: ip(DefaultTable)}), true},
		{"our set", change(&nftables.Set{Name: blockedSet, Table: ip(DefaultTable)}), true},
		{"DOCKER-USER", change(&nftables.Rule{Table: ip("filter"), Chain: &nftables.Chain{Name: "DOCKER-USER"}}), true},
		{"set elements (no table in the event)", change([]nftables.SetElement{}), true},
		{"a rule without table", change(&nftables.Rule{}), true},
		{"another table", change(&nftables.Rule{Table: ip("nat")}), false},
		{"our name in family inet", change(&nftables.Rule{Table: &nftables.Table{Name: DefaultTable, Family: nftables.TableFamilyINet}}), false},
		{"monitor failure", &nftables.MonitorEvents{GeneratedBy: &nftables.MonitorEvent{Type: nftables.MonitorEventTypeOOB}}, true},
		{"no generation", &nftables.MonitorEvents{}, true},
	}
	for _, c := range cases {
		if got := k.relevant(c.ev); got != c.want {
			t.Errorf("%s: relevant = %v, want %v", c.name, got, c.want)
		}
	}
	own := change(ip(DefaultTable))
	own.GeneratedBy = &nftables.MonitorEvent{Data: &nftables.GenMsg{ProcPID: uint32(os.Getpid())}}
	if k.relevant(own) {
		t.Error("a change of this process is relevant")
	}
}
