package netfilter

import (
	"bytes"
	"fmt"

	"github.com/google/nftables"
)

// The kernel side: reading the agent's table and DOCKER-USER back, and
// sending a plan as one batch (one nftables transaction: all or nothing,
// and packets see the old rules or the new ones, never a mix).

const commentType = 0 // NFTNL_UDATA_RULE_COMMENT

// commentData encodes a rule comment as nft does: a type-length-value with
// the string NUL-terminated.
func commentData(s string) []byte {
	return append([]byte{commentType, byte(len(s) + 1)}, append([]byte(s), 0)...)
}

// commentOf decodes a rule's comment; "" when it has none (or user data
// that is not well formed, which a tool other than nft may write).
func commentOf(udata []byte) string {
	for len(udata) >= 2 {
		typ, n := udata[0], int(udata[1])
		if len(udata) < 2+n {
			return ""
		}
		if typ == commentType {
			return string(bytes.TrimRight(udata[2:2+n], "\x00"))
		}
		udata = udata[2+n:]
	}
	return ""
}

func ipTable(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
}

// listChains dumps the chains of family ip (every table's: one dump
// serves the agent's table and DOCKER-USER).
func listChains(c *nftables.Conn) ([]*nftables.Chain, error) {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	return chains, nil
}

// readTable reads the agent's table; chains is listChains' dump.
func readTable(c *nftables.Conn, name string, chains []*nftables.Chain) (*kernelTable, error) {
	k := &kernelTable{chains: map[string]*kernelChain{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	for _, t := range tables {
		k.exists = k.exists || t.Name == name
	}
	if !k.exists {
		return k, nil
	}
	t := ipTable(name)
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		kc := &kernelChain{policy: ch.Policy}
		if ch.Hooknum != nil && ch.Priority != nil {
			kc.base = &baseChain{name: ch.Name, typ: ch.Type, hook: *ch.Hooknum, prio: *ch.Priority}
		}
		if kc.rules, err = readRules(c, t, ch.Name); err != nil {
			return nil, err
		}
		k.chains[ch.Name] = kc
	}
	return k, readSets(c, t, k)
}

// readKernel reads the agent's table and DOCKER-USER (ok: the chain
// exists).
func readKernel(c *nftables.Conn, table string) (kt *kernelTable, docker []kernelRule, ok bool, err error) {
	chains, err := listChains(c)
	if err != nil {
		return nil, nil, false, err
	}
	if kt, err = readTable(c, table, chains); err != nil {
		return nil, nil, false, err
	}
	docker, ok, err = readDocker(c, chains)
	return kt, docker, ok, err
}

func readRules(c *nftables.Conn, t *nftables.Table, chain string) ([]kernelRule, error) {
	rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return nil, fmt.Errorf("reading chain %s %s: %w", t.Name, chain, err)
	}
	out := make([]kernelRule, len(rules))
	for i, r := range rules {
		out[i] = kernelRule{handle: r.Handle, comment: commentOf(r.UserData), exprs: r.Exprs}
	}
	return out, nil
}

func readSets(c *nftables.Conn, t *nftables.Table, k *kernelTable) error {
	sets, err := c.GetSets(t)
	if err != nil {
		return fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range sets {
		if s.Name != blockedSet {
			k.extra = append(k.extra, s.Name)
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("reading set %s: %w", s.Name, err)
		}
		ok := s.KeyType.GetNFTMagic() == nftables.TypeIPAddr.GetNFTMagic() && s.Interval &&
			!s.IsMap && !s.Constant && !s.Anonymous && !s.HasTimeout && !s.Dynamic && !s.Concatenation
		k.set = &kernelSet{ok: ok, elems: elems}
	}
	return nil
}

// readDocker reads DOCKER-USER's rules; ok is false when the chain (or
// table ip filter) does not exist.
func readDocker(c *nftables.Conn, chains []*nftables.Chain) (rules []kernelRule, ok bool, err error) {
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == dockerTable && ch.Name == dockerChain {
			rules, err := readRules(c, ipTable(dockerTable), dockerChain)
			return rules, err == nil, err
		}
	}
	return nil, false, nil
}

// send applies ops to the kernel in one batch.
func send(c *nftables.Conn, rs *Ruleset, ops []op) error {
	b := batch{c: c, rs: rs, t: ipTable(rs.Table), docker: ipTable(dockerTable), chains: map[string]*Chain{}}
	b.set = &nftables.Set{Table: b.t, Name: blockedSet, ID: setID, KeyType: nftables.TypeIPAddr, Interval: true}
	for _, ch := range rs.Chains {
		b.chains[ch.Name] = ch
	}
	for _, o := range ops {
		if err := b.add(o); err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
	}
	return c.Flush()
}

// batch queues ops on a connection.
type batch struct {
	c         *nftables.Conn
	rs        *Ruleset
	t, docker *nftables.Table
	set       *nftables.Set
	chains    map[string]*Chain
}

func chainRef(t *nftables.Table, name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: t}
}

func (b *batch) add(o op) error {
	c, t := b.c, b.t
	switch o.kind {
	case opDelTable:
		c.DelTable(t)
	case opAddTable:
		c.AddTable(t)
	case opAddSet:
		return c.AddSet(b.set, elements(b.rs.blocked))
	case opSetElements:
		c.FlushSet(b.set)
		if es := elements(b.rs.blocked); len(es) > 0 {
			return c.SetAddElements(b.set, es)
		}
	case opAddChain:
		c.AddChain(nftChain(t, b.chains[o.chain]))
	case opDelRule:
		return c.DelRule(&nftables.Rule{Table: t, Chain: chainRef(t, o.chain), Handle: o.handle})
	case opAddRule:
		r := &nftables.Rule{Table: t, Chain: chainRef(t, o.chain), Exprs: o.rule.exprs(), UserData: commentData(o.rule.Comment)}
		if o.handle == 0 {
			c.AddRule(r)
		} else {
			r.Position = o.handle // before that rule
			c.InsertRule(r)
		}
	case opFlushChain:
		c.FlushChain(chainRef(t, o.chain))
	case opDelChain:
		c.DelChain(chainRef(t, o.chain))
	case opDelExtraSet:
		c.DelSet(&nftables.Set{Table: t, Name: o.chain})
	case opDockerDelete:
		return c.DelRule(&nftables.Rule{Table: b.docker, Chain: chainRef(b.docker, dockerChain), Handle: o.handle})
	case opDockerInsert:
		c.InsertRule(&nftables.Rule{Table: b.docker, Chain: chainRef(b.docker, dockerChain), Exprs: o.rule.exprs(),
			UserData: commentData(o.rule.Comment)})
	}
	return nil
}

func nftChain(t *nftables.Table, c *Chain) *nftables.Chain {
	out := &nftables.Chain{Name: c.Name, Table: t}
	if b := c.base; b != nil {
		hook, prio, policy := b.hook, b.prio, nftables.ChainPolicyAccept
		out.Type, out.Hooknum, out.Priority, out.Policy = b.typ, &hook, &prio, &policy
	}
	return out
}
