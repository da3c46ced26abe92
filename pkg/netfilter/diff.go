package netfilter

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// kernelTable is what the kernel holds of the agent's table.
type kernelTable struct {
	exists bool
	chains map[string]*kernelChain
	set    *kernelSet // nil: no set "blocked"
	extra  []string   // other sets
}

// kernelChain is a chain as read back; base is nil for a regular chain.
type kernelChain struct {
	base   *baseChain
	policy *nftables.ChainPolicy
	rules  []kernelRule
}

// kernelRule is a rule as read back.
type kernelRule struct {
	handle  uint64
	comment string
	exprs   []expr.Any
}

// kernelSet is set "blocked" as read back.
type kernelSet struct {
	ok    bool // of type ipv4_addr, flags interval and nothing else
	elems []nftables.SetElement
}

// opKind is one change of a plan.
type opKind int

const (
	opDelTable opKind = iota
	opAddTable
	opAddSet       // with its elements
	opSetElements  // flush the set, add the elements
	opAddChain     // with no rules
	opDelRule      // handle
	opAddRule      // before handle, or appended when handle is 0
	opFlushChain   // before opDelChain
	opDelChain     // an empty chain
	opDelExtraSet  // a set the ruleset does not have
	opDockerDelete // a rule of ours in DOCKER-USER (handle)
	opDockerInsert // at the top of DOCKER-USER
)

// op is one change; a plan's ops go to the kernel in one batch, in order.
type op struct {
	kind   opKind
	chain  string // or set name for opDelExtraSet
	rule   *Rule
	handle uint64
}

func (o op) String() string {
	switch o.kind {
	case opDelTable:
		return "delete table"
	case opAddTable:
		return "add table"
	case opAddSet:
		return "add set " + blockedSet
	case opSetElements:
		return "set elements " + blockedSet
	case opAddChain:
		return "add chain " + o.chain
	case opFlushChain:
		return "flush chain " + o.chain
	case opDelChain:
		return "delete chain " + o.chain
	case opDelExtraSet:
		return "delete set " + o.chain
	case opDelRule, opDockerDelete:
		return fmt.Sprintf("delete rule %s handle %d", o.chain, o.handle)
	case opDockerInsert:
		return fmt.Sprintf("insert rule %s: %s", o.chain, o.rule)
	case opAddRule:
		if o.handle != 0 {
			return fmt.Sprintf("insert rule %s position %d: %s", o.chain, o.handle, o.rule)
		}
		return fmt.Sprintf("add rule %s: %s", o.chain, o.rule)
	}
	return fmt.Sprintf("op %d", o.kind)
}

// plan returns the changes that make k equal to rs. It changes only what
// differs: rules equal to the desired ones stay (with their counters).
func plan(rs *Ruleset, k *kernelTable) []op {
	if !k.exists {
		return create(rs)
	}
	if rebuild(rs, k) {
		return append([]op{{kind: opDelTable}}, create(rs)...)
	}
	var ops []op
	if k.set == nil {
		ops = append(ops, op{kind: opAddSet})
	} else if !sameElements(elements(rs.blocked), k.set.elems) {
		ops = append(ops, op{kind: opSetElements})
	}
	desired := map[string]bool{}
	for _, c := range rs.Chains {
		desired[c.Name] = true
		if k.chains[c.Name] == nil {
			ops = append(ops, op{kind: opAddChain, chain: c.Name})
		}
	}
	for _, c := range rs.Chains {
		var have []kernelRule
		if kc := k.chains[c.Name]; kc != nil {
			have = kc.rules
		}
		ops = append(ops, planRules(c.Name, c.Rules, have)...)
	}
	return append(ops, dropExtra(k, desired)...)
}

// dropExtra deletes the chains and sets the ruleset does not have, after
// the rules (which may jump to them) are gone: all flushed first, as they
// may jump to each other.
func dropExtra(k *kernelTable, desired map[string]bool) []op {
	var extra []string
	for name := range k.chains {
		if !desired[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	var ops []op
	for _, name := range extra {
		ops = append(ops, op{kind: opFlushChain, chain: name})
	}
	for _, name := range extra {
		ops = append(ops, op{kind: opDelChain, chain: name})
	}
	for _, name := range k.extra {
		ops = append(ops, op{kind: opDelExtraSet, chain: name})
	}
	return ops
}

// create makes the whole table.
func create(rs *Ruleset) []op {
	ops := []op{{kind: opAddTable}, {kind: opAddSet}}
	for _, c := range rs.Chains {
		ops = append(ops, op{kind: opAddChain, chain: c.Name})
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			ops = append(ops, op{kind: opAddRule, chain: c.Name, rule: r})
		}
	}
	return ops
}

// rebuild reports a change of structure that rules cannot fix: a set or a
// chain of the wrong kind (type, hook, priority, policy). The table is
// then deleted and made again in the same batch.
func rebuild(rs *Ruleset, k *kernelTable) bool {
	if k.set != nil && !k.set.ok {
		return true
	}
	for _, c := range rs.Chains {
		kc := k.chains[c.Name]
		if kc == nil {
			continue
		}
		if (c.base == nil) != (kc.base == nil) {
			return true
		}
		if c.base != nil && (*kc.base != *c.base || kc.policy == nil || *kc.policy != nftables.ChainPolicyAccept) {
			return true
		}
	}
	return false
}

// planRules changes a chain's rules into want: the kernel's rules equal
// to a wanted one, in the wanted order, stay (the longest such sequence);
// the others are deleted and the missing ones inserted around those kept.
func planRules(chain string, want []*Rule, have []kernelRule) []op {
	index := make(map[string]int, len(want))
	for i, r := range want {
		index[r.Comment] = i
	}
	// Candidates: the first kernel rule equal to each wanted one.
	var cand []int // indexes into have
	seen := map[int]bool{}
	for h, kr := range have {
		if i, ok := index[kr.comment]; ok && !seen[i] && sameExprs(want[i].exprs(), kr.exprs) {
			seen[i] = true
			cand = append(cand, h)
		}
	}
	keep := map[int]uint64{} // wanted index -> handle of the kernel rule kept for it
	for _, h := range longestIncreasing(cand, func(h int) int { return index[have[h].comment] }) {
		keep[index[have[h].comment]] = have[h].handle
	}
	var ops []op
	for _, kr := range have {
		if i, ok := index[kr.comment]; !ok || keep[i] != kr.handle {
			ops = append(ops, op{kind: opDelRule, chain: chain, handle: kr.handle})
		}
	}
	for i, r := range want {
		if _, kept := keep[i]; kept {
			continue
		}
		next := uint64(0) // the next kept rule: insert before it; none: append
		for j := i + 1; j < len(want); j++ {
			if h, kept := keep[j]; kept {
				next = h
				break
			}
		}
		ops = append(ops, op{kind: opAddRule, chain: chain, rule: r, handle: next})
	}
	return ops
}

// longestIncreasing returns the longest subsequence of xs whose keys
// strictly increase (patience sorting, O(n log n)).
func longestIncreasing(xs []int, key func(int) int) []int {
	var tails []int // tails[l]: index in xs of the smallest tail of a subsequence of length l+1
	prev := make([]int, len(xs))
	for i, x := range xs {
		l, _ := slices.BinarySearchFunc(tails, key(x), func(t, k int) int { return key(xs[t]) - k })
		if l > 0 {
			prev[i] = tails[l-1]
		} else {
			prev[i] = -1
		}
		if l == len(tails) {
			tails = append(tails, i)
		} else {
			tails[l] = i
		}
	}
	out := make([]int, len(tails))
	for i, j := len(tails)-1, -1; i >= 0; i-- {
		if j == -1 {
			j = tails[i]
		} else {
			j = prev[j]
		}
		out[i] = xs[j]
	}
	return out
}

// sameExprs compares rules by their netlink encoding, leaving out what the
// kernel changes or does not return: counter values and set ids.
func sameExprs(a, b []expr.Any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, errX := expr.Marshal(byte(nftables.TableFamilyIPv4), normalize(a[i]))
		y, errY := expr.Marshal(byte(nftables.TableFamilyIPv4), normalize(b[i]))
		if errX != nil || errY != nil || !bytes.Equal(x, y) {
			return false
		}
	}
	return true
}

func normalize(e expr.Any) expr.Any {
	switch e := e.(type) {
	case *expr.Counter:
		return &expr.Counter{}
	case *expr.Lookup:
		c := *e
		c.SetID = 0
		return &c
	}
	return e
}

// sameElements compares set elements by key and interval flag.
func sameElements(a, b []nftables.SetElement) bool {
	key := func(es []nftables.SetElement) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = fmt.Sprintf("%x/%v", e.Key, e.IntervalEnd)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// planDocker keeps want at the top of DOCKER-USER (have: its rules) and no
// other rule of ours (a comment starting with "<table>:") in it.
func planDocker(table string, want []*Rule, have []kernelRule) []op {
	ours := func(kr kernelRule) bool { return strings.HasPrefix(kr.comment, table+":") }
	inPlace := len(have) >= len(want)
	for i := 0; inPlace && i < len(want); i++ {
		inPlace = have[i].comment == want[i].Comment && sameExprs(want[i].exprs(), have[i].exprs)
	}
	for i := len(want); inPlace && i < len(have); i++ {
		inPlace = !ours(have[i])
	}
	if inPlace {
		return nil
	}
	var ops []op
	for _, kr := range have {
		if ours(kr) {
			ops = append(ops, op{kind: opDockerDelete, chain: dockerChain, handle: kr.handle})
		}
	}
	for i := len(want) - 1; i >= 0; i-- { // each goes to the top: last first
		ops = append(ops, op{kind: opDockerInsert, chain: dockerChain, rule: want[i]})
	}
	return ops
}
