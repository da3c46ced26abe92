package metrics

import (
	"bufio"
	"strconv"
	"strings"
)

// The OVS families are written straight in the Prometheus text format
// (version 0.0.4): at 10k ports that is 90k samples, and building
// client_golang metrics for them, then sorting, checking and encoding them,
// costs ten times more than the read from Open vSwitch.

// family describes one metric family written by hand.
type family struct {
	name, help, typ string // typ: "counter" or "gauge"
}

// textWriter appends samples to a buffered writer; the first error sticks.
type textWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

// header writes HELP and TYPE; the family's samples must follow at once.
func (t *textWriter) header(f family) {
	t.buf = append(t.buf[:0], "# HELP "...)
	t.buf = append(t.buf, f.name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, helpEscaper.Replace(f.help)...)
	t.buf = append(t.buf, "\n# TYPE "...)
	t.buf = append(t.buf, f.name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, f.typ...)
	t.buf = append(t.buf, '\n')
	t.flush()
}

// sample writes `name{labels} value`; labels is a rendered label set
// (labelSet) or "".
func (t *textWriter) sample(name, labels string, v float64) {
	t.buf = append(t.buf[:0], name...)
	t.buf = append(t.buf, labels...)
	t.buf = append(t.buf, ' ')
	t.buf = strconv.AppendFloat(t.buf, v, 'g', -1, 64)
	t.buf = append(t.buf, '\n')
	t.flush()
}

// counter writes an integer counter sample exactly (a float64 loses
// precision above 2^53).
func (t *textWriter) counter(name, labels string, v uint64) {
	t.buf = append(t.buf[:0], name...)
	t.buf = append(t.buf, labels...)
	t.buf = append(t.buf, ' ')
	t.buf = strconv.AppendUint(t.buf, v, 10)
	t.buf = append(t.buf, '\n')
	t.flush()
}

func (t *textWriter) flush() {
	if t.err == nil {
		_, t.err = t.w.Write(t.buf)
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// labelSet renders {k1="v1",k2="v2"} from name/value pairs, escaping the
// values.
func labelSet(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		valueEscaper.WriteString(&b, kv[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
