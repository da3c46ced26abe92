package flow

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultPriority is OpenFlow's default priority; ovs-ofctl omits it.
const DefaultPriority = 0x8000

// Flow is one OpenFlow 1.3 flow entry: a value, compared and printed, encoded
// by FlowMod. Flows never time out and carry no flags.
type Flow struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	Match    Match
	Actions  []Action // run in order; a GotoTable comes last; none means drop
}

// String renders the flow exactly as
// `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints it in OVS 3.1 (port
// numbers, not names), without the leading space of each dump line.
func (f Flow) String() string {
	var b strings.Builder
	if f.Cookie != 0 {
		fmt.Fprintf(&b, "cookie=%#x, ", f.Cookie)
	}
	if f.Table != 0 {
		fmt.Fprintf(&b, "table=%d, ", f.Table)
	}
	var parts []string
	if f.Priority != DefaultPriority {
		parts = append(parts, fmt.Sprintf("priority=%d", f.Priority))
	}
	if m := f.Match.String(); m != "" {
		parts = append(parts, m)
	}
	b.WriteString(strings.Join(parts, ","))
	if len(parts) > 0 {
		b.WriteByte(' ')
	}
	b.WriteString("actions=")
	b.WriteString(ActionsString(f.Actions))
	return b.String()
}

// ActionsString formats actions as ovs-ofctl does ("drop" for none).
func ActionsString(as []Action) string {
	if len(as) == 0 {
		return "drop"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// Dump renders flows the way `ovs-ofctl -O OpenFlow13 dump-flows --no-stats`
// prints them: one per line, each indented by one space, in the given order.
func Dump(flows []Flow) string {
	var b strings.Builder
	for _, f := range flows {
		b.WriteByte(' ')
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Validate checks what OVS would reject: malformed values, missing
// prerequisites, a misplaced or backward goto_table.
func (f Flow) Validate() error {
	var errs []error // only the errors: a valid flow allocates nothing
	if err := f.Match.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, a := range f.Actions {
		if g, ok := a.(GotoTable); ok {
			if i != len(f.Actions)-1 {
				errs = append(errs, errors.New("goto_table must be the last action"))
			}
			if g.Table <= f.Table {
				errs = append(errs, fmt.Errorf("goto_table:%d from table %d: tables only go forward", g.Table, f.Table))
			}
			continue
		}
		if err := a.Check(f.Match); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flow %q: %w", f.String(), err)
	}
	return nil
}

// Key identifies a flow in a switch: OpenFlow allows one flow per table,
// priority and match. Match holds the match's OXM TLVs, sorted, so keys from
// Flow.Key and from flow stats read back from OVS compare equal.
type Key struct {
	Table    uint8
	Priority uint16
	Match    string
}

// Key is the flow's identity in the switch.
func (f Flow) Key() Key {
	return Key{Table: f.Table, Priority: f.Priority, Match: matchKey(f.Match)}
}

// Content is what a flow does: its cookie and its instructions in the
// OpenFlow 1.3 encoding OVS returns in flow stats. Two flows with equal keys
// and equal contents are the same flow.
type Content string

// Content is the flow's cookie and encoded instructions.
func (f Flow) Content() Content {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+8+24*len(f.Actions)+8), f.Cookie)
	b, err := appendInstructions(b, f.Actions)
	if err != nil {
		// Only invalid actions fail to encode; their text keeps contents distinct.
		return Content(fmt.Sprintf("%016x|invalid|%s", f.Cookie, ActionsString(f.Actions)))
	}
	return Content(b)
}

func makeContent(cookie uint64, instr []byte) Content {
	b := make([]byte, 8, 8+len(instr))
	binary.BigEndian.PutUint64(b, cookie)
	return Content(append(b, instr...))
}

// Compare orders flows as ovs-ofctl's dump lists them per table: by table,
// then by descending priority; ties are broken by the canonical match so the
// order is total and stable.
func Compare(a, b Flow) int { return CompareKeys(a.Key(), b.Key()) }

// CompareKeys orders keys by table, descending priority, then canonical match.
func CompareKeys(a, b Key) int {
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	return strings.Compare(a.Match, b.Match)
}

// Sort sorts flows in Compare order.
func Sort(flows []Flow) {
	type keyed struct {
		k Key
		f Flow
	}
	ks := make([]keyed, len(flows))
	for i, f := range flows {
		ks[i] = keyed{f.Key(), f}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return CompareKeys(a.k, b.k) })
	for i := range ks {
		flows[i] = ks[i].f
	}
}
