package netfilter

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
)

// String prints the table as `nft list table ip <name>` does (nft 1.0),
// counters at zero: the golden file's format, and what an operator sees.
func (rs *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", rs.Table)
	fmt.Fprintf(&b, "\tset %s {\n\t\ttype ipv4_addr\n\t\tflags interval\n", blockedSet)
	if len(rs.blocked) > 0 {
		elems := make([]string, len(rs.blocked))
		for i, r := range rs.blocked {
			elems[i] = r.String()
		}
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
	for _, c := range rs.Chains {
		b.WriteString("\n")
		b.WriteString(c.String())
	}
	b.WriteString("}\n")
	return b.String()
}

// String prints the chain as `nft list table` does.
func (c *Chain) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
	if c.base != nil {
		fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", c.base.typ, hookName(c.base.hook), priorityName(c.base))
	}
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n")
	return b.String()
}

// DockerUserString prints the rules kept in DOCKER-USER as
// `nft list chain ip filter DOCKER-USER` shows them.
func (rs *Ruleset) DockerUserString() string {
	var b strings.Builder
	for _, r := range rs.DockerUser {
		fmt.Fprintf(&b, "%s\n", r)
	}
	return b.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook-%d", h)
}

// priorityName uses the names nft prints for the standard priorities of
// family ip (dstnat and srcnat only at the hooks they are named for).
func priorityName(c *baseChain) string {
	switch {
	case c.prio == *nftables.ChainPriorityFilter:
		return "filter"
	case c.prio == *nftables.ChainPriorityNATDest && c.hook == *nftables.ChainHookPrerouting:
		return "dstnat"
	case c.prio == *nftables.ChainPriorityNATSource && c.hook == *nftables.ChainHookPostrouting:
		return "srcnat"
	}
	return fmt.Sprint(c.prio)
}
