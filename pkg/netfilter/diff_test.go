package netfilter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// fakeKernel is a model of the kernel's table: plans are applied to it
// with the kernel's semantics (handles, insert before a handle, append).
type fakeKernel struct {
	kernelTable
	next uint64 // the next handle
}

// kernelOf is the kernel holding rs exactly.
func kernelOf(rs *Ruleset) *fakeKernel {
	k := &fakeKernel{kernelTable: kernelTable{chains: map[string]*kernelChain{}}, next: 1}
	k.do(rs, create(rs))
	return k
}

func (k *fakeKernel) rule(r *Rule) kernelRule {
	k.next++
	return kernelRule{handle: k.next, comment: r.Comment, exprs: r.exprs()}
}

// do applies ops as the kernel would.
func (k *fakeKernel) do(rs *Ruleset, ops []op) {
	chains := map[string]*Chain{}
	for _, c := range rs.Chains {
		chains[c.Name] = c
	}
	policy := nftables.ChainPolicyAccept
	for _, o := range ops {
		switch o.kind {
		case opDelTable:
			k.kernelTable = kernelTable{chains: map[string]*kernelChain{}}
		case opAddTable:
			k.exists = true
		case opAddSet, opSetElements:
			k.set = &kernelSet{ok: true, elems: elements(rs.blocked)}
		case opAddChain:
			k.chains[o.chain] = &kernelChain{base: chains[o.chain].base, policy: &policy}
		case opDelRule:
			kc := k.chains[o.chain]
			kc.rules = slices.DeleteFunc(kc.rules, func(r kernelRule) bool { return r.handle == o.handle })
		case opAddRule:
			kc := k.chains[o.chain]
			at := len(kc.rules)
			if o.handle != 0 {
				at = slices.IndexFunc(kc.rules, func(r kernelRule) bool { return r.handle == o.handle })
			}
			kc.rules = slices.Insert(kc.rules, at, k.rule(o.rule))
		case opFlushChain:
			k.chains[o.chain].rules = nil
		case opDelChain:
			delete(k.chains, o.chain)
		case opDelExtraSet:
			k.extra = slices.DeleteFunc(k.extra, func(s string) bool { return s == o.chain })
		}
	}
}

// dump prints the model like a listing: chains by name, rules in order.
func (k *fakeKernel) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exists=%v set=%v extra=%v\n", k.exists, k.set != nil && sameElements(k.set.elems, k.set.elems), k.extra)
	names := make([]string, 0, len(k.chains))
	for n := range k.chains {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %v:", n, k.chains[n].base)
		for _, r := range k.chains[n].rules {
			fmt.Fprintf(&b, " %q", r.comment)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func referenceRules(t *testing.T) *Ruleset {
	t.Helper()
	rs, _ := Build("", referenceState())
	return rs
}

func TestPlanInSync(t *testing.T) {
	rs := referenceRules(t)
	if ops := plan(rs, &kernelOf(rs).kernelTable); len(ops) != 0 {
		t.Fatalf("a kernel holding the rules needs %v", ops)
	}
	if ops := plan(rs, &kernelTable{}); ops[0].kind != opAddTable || len(ops) != 2+len(rs.Chains)+countRules(rs) {
		t.Fatalf("no table: %d ops starting %v", len(ops), ops[0])
	}
}

func countRules(rs *Ruleset) int {
	n := 0
	for _, c := range rs.Chains {
		n += len(c.Rules)
	}
	return n
}

// Each edit of the kernel is undone by a plan that touches only what
// differs, and applying it gives the rules back.
func TestPlanRepairs(t *testing.T) {
	rs := referenceRules(t)
	rogue := kernelRule{handle: 999, comment: "rogue", exprs: rule("rogue", accept).exprs()}
	cases := []struct {
		name  string
		edit  func(k *fakeKernel)
		want  []opKind
		first string // the first op's text, when it matters
	}{
		{"rule deleted", func(k *fakeKernel) { k.chains["forward"].rules = slices.Delete(k.chains["forward"].rules, 1, 2) },
			[]opKind{opAddRule}, "insert rule forward position"},
		{"last rule deleted", func(k *fakeKernel) { r := k.chains["from-blue"].rules; k.chains["from-blue"].rules = r[:len(r)-1] },
			[]opKind{opAddRule}, `add rule from-blue: counter packets 0 bytes 0 accept comment "outside"`},
		{"rogue rule", func(k *fakeKernel) { k.chains["to-red"].rules = slices.Insert(k.chains["to-red"].rules, 0, rogue) },
			[]opKind{opDelRule}, "delete rule to-red handle 999"},
		{"rule edited, comment kept", func(k *fakeKernel) { k.chains["to-blue"].rules[2].exprs = rogue.exprs },
			[]opKind{opDelRule, opAddRule}, ""},
		{"rules swapped", func(k *fakeKernel) { r := k.chains["forward"].rules; r[1], r[2] = r[2], r[1] },
			[]opKind{opDelRule, opAddRule}, ""},
		{"rule duplicated", func(k *fakeKernel) {
			r := k.chains["input"].rules
			dup := r[1]
			dup.handle = 998
			k.chains["input"].rules = append(r, dup)
		}, []opKind{opDelRule}, "delete rule input handle 998"},
		{"chain flushed", func(k *fakeKernel) { k.chains["postrouting"].rules = nil },
			[]opKind{opAddRule, opAddRule, opAddRule, opAddRule, opAddRule}, ""},
		{"chain deleted", func(k *fakeKernel) { delete(k.chains, "published") },
			[]opKind{opAddChain, opAddRule, opAddRule, opAddRule}, ""},
		{"extra chain", func(k *fakeKernel) { k.chains["rogue"] = &kernelChain{rules: []kernelRule{rogue}} },
			[]opKind{opFlushChain, opDelChain}, ""},
		{"extra set", func(k *fakeKernel) { k.extra = []string{"rogue"} }, []opKind{opDelExtraSet}, ""},
		{"set emptied", func(k *fakeKernel) { k.set.elems = nil }, []opKind{opSetElements}, ""},
		{"set deleted", func(k *fakeKernel) { k.set = nil }, []opKind{opAddSet}, ""},
		{"set of another type", func(k *fakeKernel) { k.set.ok = false }, nil, "delete table"},
		{"base chain policy drop", func(k *fakeKernel) { p := nftables.ChainPolicyDrop; k.chains["forward"].policy = &p }, nil, "delete table"},
		{"base chain made regular", func(k *fakeKernel) { k.chains["input"].base = nil }, nil, "delete table"},
		{"regular chain made base", func(k *fakeKernel) { k.chains["to-blue"].base = &forward }, nil, "delete table"},
		{"table deleted", func(k *fakeKernel) { k.kernelTable = kernelTable{chains: map[string]*kernelChain{}} }, nil, "add table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := kernelOf(rs)
			c.edit(k)
			ops := plan(rs, &k.kernelTable)
			var kinds []opKind
			for _, o := range ops {
				kinds = append(kinds, o.kind)
			}
			if c.want != nil && !slices.Equal(kinds, c.want) {
				t.Errorf("ops %v, want kinds %v", ops, c.want)
			}
			if c.first != "" && (len(ops) == 0 || !strings.HasPrefix(ops[0].String(), c.first)) {
				t.Errorf("first op %v, want %q", ops, c.first)
			}
			k.do(rs, ops)
			if got, want := k.dump(), kernelOf(rs).dump(); got != want {
				t.Fatalf("after the plan:\n%s\nwant:\n%s", got, want)
			}
			if again := plan(rs, &k.kernelTable); len(again) != 0 {
				t.Fatalf("after the plan, still %v", again)
			}
		})
	}
}

// Random shuffles, deletions and rogue insertions of a chain's rules are
// always repaired in one plan.
func TestPlanRulesRandom(t *testing.T) {
	rs := referenceRules(t)
	want := kernelOf(rs).dump()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		k := kernelOf(rs)
		for _, kc := range k.chains {
			r := kc.rules
			rnd.Shuffle(len(r), func(a, b int) { r[a], r[b] = r[b], r[a] })
			if len(r) > 0 && rnd.IntN(3) == 0 {
				r = slices.Delete(r, 0, 1)
			}
			if rnd.IntN(3) == 0 {
				k.next++
				r = slices.Insert(r, rnd.IntN(len(r)+1), kernelRule{handle: 10000 + k.next, comment: "x", exprs: rule("x", drop).exprs()})
			}
			kc.rules = r
		}
		k.do(rs, plan(rs, &k.kernelTable))
		if got := k.dump(); got != want {
			t.Fatalf("round %d: after the plan:\n%s\nwant:\n%s", i, got, want)
		}
	}
}

func TestLongestIncreasing(t *testing.T) {
	id := func(x int) int { return x }
	cases := []struct{ in, want []int }{
		{nil, []int{}},
		{[]int{1, 2, 3}, []int{1, 2, 3}},
		{[]int{3, 2, 1}, []int{1}},
		{[]int{0, 8, 4, 12, 2, 10, 6, 14, 1, 9}, []int{0, 2, 6, 9}},
		{[]int{5, 1, 6, 2, 7, 3, 8}, []int{1, 2, 3, 8}},
	}
	for _, c := range cases {
		if got := longestIncreasing(c.in, id); !slices.Equal(got, c.want) {
			t.Errorf("longestIncreasing(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPlanDocker(t *testing.T) {
	rs := referenceRules(t)
	mine := func(i int, h uint64) kernelRule {
		return kernelRule{handle: h, comment: rs.DockerUser[i].Comment, exprs: rs.DockerUser[i].exprs()}
	}
	docker := kernelRule{handle: 50, comment: "", exprs: rule("", ret).exprs()}
	inPlace := []kernelRule{mine(0, 1), mine(1, 2), mine(2, 3), mine(3, 4), docker}
	cases := []struct {
		name      string
		want      []*Rule
		have      []kernelRule
		del, adds int
	}{
		{"in place", rs.DockerUser, inPlace, 0, 0},
		{"chain without ours", rs.DockerUser, []kernelRule{docker}, 0, 4},
		{"one deleted", rs.DockerUser, []kernelRule{mine(1, 2), mine(2, 3), mine(3, 4), docker}, 3, 4},
		{"below a user's rule", rs.DockerUser, []kernelRule{docker, mine(0, 1), mine(1, 2), mine(2, 3), mine(3, 4)}, 4, 4},
		{"a stale one of ours below", rs.DockerUser[:2], []kernelRule{mine(0, 1), mine(1, 2), docker, mine(3, 4)}, 3, 2},
		{"nothing wanted (cleanup)", nil, inPlace, 4, 0},
		{"nothing wanted, nothing there", nil, []kernelRule{docker}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops := planDocker(DefaultTable, c.want, c.have)
			del, adds := 0, 0
			for _, o := range ops {
				switch o.kind {
				case opDockerDelete:
					del++
					if o.handle == docker.handle {
						t.Fatal("deleted Docker's own rule")
					}
				case opDockerInsert:
					adds++
				}
			}
			if del != c.del || adds != c.adds {
				t.Fatalf("ops %v: %d deletes, %d inserts; want %d, %d", ops, del, adds, c.del, c.adds)
			}
			if adds > 0 && ops[len(ops)-1].rule != c.want[0] {
				t.Fatalf("the last insert (the top rule) is %v, want %v", ops[len(ops)-1].rule, c.want[0])
			}
		})
	}
}

func TestCommentData(t *testing.T) {
	for _, s := range []string{"", "published ports", strings.Repeat("x", 200)} {
		if got := commentOf(commentData(s)); got != s {
			t.Errorf("round trip of %q: %q", s, got)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 9, 'a'}, {1, 1, 'a', 0, 5}} {
		if got := commentOf(bad); got != "" {
			t.Errorf("commentOf(%v) = %q, want none", bad, got)
		}
	}
	if got := commentOf([]byte{1, 1, 'z', 0, 2, 'o', 0}); got != "o" {
		t.Errorf("a comment after another attribute: %q", got)
	}
}
