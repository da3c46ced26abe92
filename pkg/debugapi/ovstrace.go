package debugapi

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// OVSTrace is what ofproto/trace reports for the first bridge (nested
// bridges a tunnel or patch port leads to are not parsed).
type OVSTrace struct {
	Flow     string // the packet as OVS parsed it ("Flow: ...")
	Steps    []OVSStep
	Outputs  []string // output actions run, as printed ("output:1", "IN_PORT")
	Final    string   // "Final flow: ..."; "unchanged" when so
	Datapath string   // "Datapath actions: ..."
}

// OVSStep is one table visited.
type OVSStep struct {
	Table    uint8
	Matched  bool // false: "No match."
	Priority uint16
	Cookie   uint64
	Match    string   // as ovs-ofctl prints it, "" for a catch-all
	Actions  []string // one per action, as printed
	Notes    []string // OVS's comments on the actions ("-> ...", ">> ...")
}

var (
	// " 5. reg0=0x64,dl_dst=..., priority 124, cookie 0xfca0..." or
	// " 0. priority 0, cookie 0x...": two columns for the table number.
	tableLineRE = regexp.MustCompile(`^ ?(\d+)\. (.*)$`)
	hitRE       = regexp.MustCompile(`^(?:(.*), )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$`)
	outputRE    = regexp.MustCompile(`^(output:\d+|IN_PORT|LOCAL|NORMAL|FLOOD|ALL|CONTROLLER(:.*)?)$`)
)

// ParseOVSTrace extracts the first bridge's per-table hits, outputs and
// final packet from ofproto/trace text.
func ParseOVSTrace(text string) (OVSTrace, error) {
	var t OVSTrace
	inBridge, seenBridge := false, false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "Flow: "):
			t.Flow = strings.TrimPrefix(line, "Flow: ")
		case strings.HasPrefix(line, "bridge(\""):
			inBridge, seenBridge = !seenBridge, true
		case strings.HasPrefix(line, "Final flow: "):
			t.Final, inBridge = strings.TrimPrefix(line, "Final flow: "), false
		case strings.HasPrefix(line, "Datapath actions: "):
			t.Datapath = strings.TrimPrefix(line, "Datapath actions: ")
		case inBridge:
			if err := t.addLine(line); err != nil {
				return t, err
			}
		}
	}
	if !seenBridge || len(t.Steps) == 0 {
		return t, errors.New("ofproto/trace output has no bridge section with tables")
	}
	return t, nil
}

// addLine handles one line of the first bridge's section.
func (t *OVSTrace) addLine(line string) error {
	indent := len(line) - len(strings.TrimLeft(line, " "))
	text := strings.TrimSpace(line)
	if m := tableLineRE.FindStringSubmatch(line); m != nil {
		return t.addStep(m[1], m[2])
	}
	if text == "" || strings.HasPrefix(text, "---") || len(t.Steps) == 0 {
		return nil
	}
	st := &t.Steps[len(t.Steps)-1]
	switch {
	case indent == 4:
		st.Actions = append(st.Actions, text)
		if outputRE.MatchString(text) {
			t.Outputs = append(t.Outputs, text)
		}
	case indent == 5:
		st.Notes = append(st.Notes, text)
	}
	return nil // deeper lines belong to nested bridges and resubmits
}

func (t *OVSTrace) addStep(table, rest string) error {
	id, err := strconv.ParseUint(table, 10, 8)
	if err != nil {
		return fmt.Errorf("ofproto/trace: table %q: %w", table, err)
	}
	st := OVSStep{Table: uint8(id)}
	if strings.HasPrefix(rest, "No match") {
		t.Steps = append(t.Steps, st)
		return nil
	}
	m := hitRE.FindStringSubmatch(rest)
	if m == nil {
		return fmt.Errorf("ofproto/trace: cannot read table line %q", rest)
	}
	prio, _ := strconv.ParseUint(m[2], 10, 16)
	st.Matched, st.Priority, st.Match = true, uint16(prio), m[1]
	if m[3] != "" {
		st.Cookie, _ = strconv.ParseUint(m[3][2:], 16, 64)
	}
	t.Steps = append(t.Steps, st)
	return nil
}

// fields parses "ip,reg0=0x64,in_port=1,..." into name -> value; bare
// words (ip, arp) are left out.
func fields(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// changedFields compares OVS's initial and final packet over the fields
// the model knows. shown lists the fields the final packet states (an
// absent field is zero in OVS's notation, except that OVS leaves tun_id
// out even when set: only shown fields can be compared).
func (t OVSTrace) changedFields() (changed map[string]string, shown map[string]bool) {
	changed, shown = map[string]string{}, map[string]bool{}
	if t.Final == "unchanged" {
		for _, tf := range traceFields {
			shown[tf.name] = true
		}
		return changed, shown
	}
	before, after := fields(t.Flow), fields(t.Final)
	for _, tf := range traceFields {
		v, ok := after[tf.name]
		if !ok {
			continue
		}
		shown[tf.name] = true
		b, ok := before[tf.name]
		if !ok {
			b = tf.kind.format(0)
		}
		if v != b {
			changed[tf.name] = v
		}
	}
	return changed, shown
}
