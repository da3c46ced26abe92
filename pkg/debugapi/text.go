package debugapi

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteFlowsText prints a flows report for people: a summary line, then
// per table each flow's status, counters and owner above its ovs-ofctl text.
func WriteFlowsText(w io.Writer, r FlowsReport) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "Flows of %s: OVS compared with the agent's desired flows\n", r.Bridge)
	fmt.Fprintf(b, "  %d expected, %d MISSING, %d UNEXPECTED, %d DIFFERENT", r.Summary[StatusExpected],
		r.Summary[StatusMissing], r.Summary[StatusUnexpected], r.Summary[StatusDifferent])
	rare := r.Summary[StatusFailed] + r.Summary[StatusWaiting]
	if rare > 0 {
		fmt.Fprintf(b, ", %d FAILED, %d WAITING", r.Summary[StatusFailed], r.Summary[StatusWaiting])
	}
	if len(r.Filters) > 0 {
		var fs []string
		for _, k := range slices.Sorted(maps.Keys(r.Filters)) {
			fs = append(fs, k+"="+r.Filters[k])
		}
		fmt.Fprintf(b, "  (only %s)", strings.Join(fs, " "))
	}
	b.WriteString("\n  MISSING: desired, not in OVS. UNEXPECTED: in OVS, not desired. DIFFERENT: desired match, other actions or cookie.\n")
	if rare > 0 {
		b.WriteString("  FAILED: OVS refused a flow of its owner, whose flows are kept out and retried. WAITING: another owner holds its key.\n")
	}
	if len(r.Tables) == 0 {
		b.WriteString("\nno flow matches the filters\n")
	}
	for _, t := range r.Tables {
		fmt.Fprintf(b, "\ntable %d %s", t.Table, t.Name)
		if t.Doc != "" {
			fmt.Fprintf(b, ": %s", t.Doc)
		}
		fmt.Fprintf(b, " (%s)\n", plural(len(t.Flows), "flow"))
		for _, f := range t.Flows {
			writeFlowEntry(b, f)
		}
	}
	return b.Flush()
}

func writeFlowEntry(b *bufio.Writer, f FlowEntry) {
	status := f.Status
	if status != StatusExpected {
		status = strings.ToUpper(status)
	}
	counters := ""
	if inOVS := f.Status != StatusMissing && f.Status != StatusWaiting && (f.Status != StatusFailed || f.DurationSeconds > 0); inOVS {
		age := time.Duration(f.DurationSeconds * float64(time.Second)).Round(time.Second)
		counters = fmt.Sprintf("packets=%d bytes=%d age=%s", f.Packets, f.Bytes, age)
	}
	owner := f.Owner
	if owner == "" {
		owner = "-"
	}
	fmt.Fprintf(b, "  %-10s  %-40s  %s\n", status, counters, owner)
	if f.Desired != "" {
		fmt.Fprintf(b, "      in OVS:  %s\n      desired: %s\n", f.Flow, f.Desired)
	} else {
		fmt.Fprintf(b, "      %s\n", f.Flow)
	}
	if f.Note != "" {
		fmt.Fprintf(b, "      note: %s\n", f.Note)
	}
}

// WriteTraceText prints a trace report for people: table by table, "same"
// where the model and OVS agree, both sides where they do not, then the
// outputs, the rewritten fields and the verdict.
func WriteTraceText(w io.Writer, r TraceReport) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "Trace on %s of %s\n", r.Bridge, r.Packet)
	b.WriteString("model = the agent's desired flows; OVS = ofproto/trace in ovs-vswitchd\n\n")
	var ovs []TraceStep
	if r.OVS != nil {
		ovs = r.OVS.Steps
	}
	for i := range max(len(r.Model.Steps), len(ovs)) {
		var m, o *TraceStep
		if i < len(r.Model.Steps) {
			m = &r.Model.Steps[i]
		}
		if i < len(ovs) {
			o = &ovs[i]
		}
		writeStep(b, m, o, r.OVS != nil)
	}
	b.WriteByte('\n')
	fmt.Fprintf(b, "  model: %s; rewrites %s\n", r.Model.Verdict, changedText(r.Model.Changed))
	if r.Model.CannotEvaluate != "" {
		fmt.Fprintf(b, "  CANNOT EVALUATE (model): %s\n", r.Model.CannotEvaluate)
	}
	if r.OVS != nil {
		fmt.Fprintf(b, "  OVS:   %s; rewrites %s\n", r.OVS.Verdict, changedText(r.OVS.Changed))
		fmt.Fprintf(b, "  datapath actions (OVS): %s\n", r.DatapathActions)
	}
	switch {
	case r.OVS == nil:
		fmt.Fprintf(b, "\nNOT COMPARED: %s\n", r.OVSError)
	case len(r.Differences) == 0:
		b.WriteString("\nAGREE: OVS does what the agent's flows say.\n")
	default:
		fmt.Fprintf(b, "\nDIFFER (%s):\n", plural(len(r.Differences), "difference"))
		for _, d := range r.Differences {
			fmt.Fprintf(b, "  - %s\n", d)
		}
	}
	return b.Flush()
}

func writeStep(b *bufio.Writer, m, o *TraceStep, haveOVS bool) {
	head := func(s *TraceStep) string { return fmt.Sprintf("%2d %-14s", s.Table, s.TableName) }
	switch {
	case m != nil && o != nil && len(stepDifferences(*m, *o)) == 0:
		fmt.Fprintf(b, "%s same     %s%s\n", head(m), stepText(m), ownerText(m))
		writeNotes(b, o)
	case m != nil && !haveOVS:
		fmt.Fprintf(b, "%s model    %s%s\n", head(m), stepText(m), ownerText(m))
	default:
		s := m
		if s == nil {
			s = o
		}
		fmt.Fprintf(b, "%s DIFFERENT\n", head(s))
		if m != nil {
			fmt.Fprintf(b, "     model: %s%s\n", stepText(m), ownerText(m))
		} else {
			b.WriteString("     model: (not reached)\n")
		}
		if o != nil {
			fmt.Fprintf(b, "     OVS:   %s\n", stepText(o))
			writeNotes(b, o)
		} else {
			b.WriteString("     OVS:   (not reached)\n")
		}
	}
}

func writeNotes(b *bufio.Writer, s *TraceStep) {
	for _, n := range s.Notes {
		fmt.Fprintf(b, "            %s\n", n)
	}
}

func stepText(s *TraceStep) string {
	if s.CannotEvaluate != "" {
		return "cannot evaluate: " + s.CannotEvaluate
	}
	if !s.Matched {
		return "no flow matches: dropped"
	}
	return hitText(*s) + " actions=" + strings.Join(s.Actions, ",")
}

func ownerText(s *TraceStep) string {
	if s.Owner == "" {
		return ""
	}
	return "  [" + s.Owner + "]"
}

func changedText(c map[string]string) string {
	if len(c) == 0 {
		return "nothing"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		out = append(out, k+"="+c[k])
	}
	return strings.Join(out, ",")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
