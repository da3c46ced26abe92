package ovsdb

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// A reader of JSON-RPC messages and the OVSDB values (RFC 7047 §5.1) of
// the columns the snapshot reads (snapshot.go), written for its volume:
// 10,000 rows are read in one pass over the bytes, straight into the rows
// the client indexes, with no interface{} per value.

// atomParser reads OVSDB JSON values from b.
type atomParser struct {
	b []byte
	i int
}

func (p *atomParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *atomParser) errorf(format string, args ...any) error {
	near := p.b[max(0, p.i-40):min(len(p.b), p.i+40)]
	return fmt.Errorf("ovsdb json at byte %d (near %q): %s", p.i, near, fmt.Sprintf(format, args...))
}

// peek returns the next non-space byte (0 at the end).
func (p *atomParser) peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// expect consumes byte c.
func (p *atomParser) expect(c byte) error {
	if p.peek() != c {
		return p.errorf("want %q", c)
	}
	p.i++
	return nil
}

// next consumes a ',' and reports true, or reports false before close.
func (p *atomParser) next(close byte) (bool, error) {
	switch p.peek() {
	case ',':
		p.i++
		return true, nil
	case close:
		return false, nil
	}
	return false, p.errorf("want ',' or %q", close)
}

// str reads a JSON string.
func (p *atomParser) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '"':
			p.i++
			return string(p.b[start : p.i-1]), nil
		case '\\': // rare: let encoding/json unescape it
			return p.escaped(start - 1)
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// escaped reads the string starting at the quote at start, escapes
// included (p.i is at the first backslash).
func (p *atomParser) escaped(start int) (string, error) {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return "", p.errorf("%v", err)
			}
			return s, nil
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// integer reads a JSON integer.
func (p *atomParser) integer() (int, error) {
	p.ws()
	start := p.i
	for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] >= '0' && p.b[p.i] <= '9') {
		p.i++
	}
	n, err := strconv.Atoi(string(p.b[start:p.i]))
	if err != nil {
		return 0, p.errorf("want an integer")
	}
	return n, nil
}

// tagged reads `["tag",` and reports the tag; the caller reads the rest.
func (p *atomParser) tagged() (string, error) {
	if err := p.expect('['); err != nil {
		return "", err
	}
	tag, err := p.str()
	if err != nil {
		return "", err
	}
	return tag, p.expect(',')
}

// uuid reads ["uuid","..."].
func (p *atomParser) uuid() (string, error) {
	tag, err := p.tagged()
	if err != nil {
		return "", err
	}
	if tag != "uuid" {
		return "", p.errorf("want a uuid, got %q", tag)
	}
	u, err := p.str()
	if err != nil {
		return "", err
	}
	return u, p.expect(']')
}

// set reads a set of atoms (each read by atom): ["set",[...]] or one atom
// alone. An atom that is itself an array (a UUID) is told apart from a
// set by its tag.
func (p *atomParser) set(atom func() error) error {
	if p.peek() != '[' {
		return atom()
	}
	save := p.i
	tag, err := p.tagged()
	if err != nil {
		return err
	}
	if tag != "set" {
		p.i = save // an atom such as ["uuid", ...]
		return atom()
	}
	if err := p.expect('['); err != nil {
		return err
	}
	if p.peek() != ']' {
		for more := true; more; {
			if err := atom(); err != nil {
				return err
			}
			if more, err = p.next(']'); err != nil {
				return err
			}
		}
	}
	p.i++ // ']'
	return p.expect(']')
}

// pairs reads ["map",[[k,v],...]], calling pair for each, which reads the
// key, the comma and the value.
func (p *atomParser) pairs(pair func() error) error {
	tag, err := p.tagged()
	if err != nil {
		return err
	}
	if tag != "map" {
		return p.errorf("want a map, got %q", tag)
	}
	if err := p.expect('['); err != nil {
		return err
	}
	if p.peek() != ']' {
		for more := true; more; {
			if err := p.expect('['); err != nil {
				return err
			}
			if err := pair(); err != nil {
				return err
			}
			if err := p.expect(']'); err != nil {
				return err
			}
			if more, err = p.next(']'); err != nil {
				return err
			}
		}
	}
	p.i++ // ']'
	return p.expect(']')
}

// end checks that nothing but space is left.
func (p *atomParser) end() error {
	if p.peek() != 0 {
		return p.errorf("trailing bytes")
	}
	return nil
}

// object reads a JSON object, calling field with each key; field reads
// the value.
func (p *atomParser) object(field func(key string) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() != '}' {
		for more := true; more; {
			k, err := p.str()
			if err != nil {
				return err
			}
			if err := p.expect(':'); err != nil {
				return err
			}
			if err := field(k); err != nil {
				return err
			}
			if more, err = p.next('}'); err != nil {
				return err
			}
		}
	}
	p.i++ // '}'
	return nil
}

// array reads a JSON array, calling elem to read each element.
func (p *atomParser) array(elem func() error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	if p.peek() != ']' {
		for more := true; more; {
			if err := elem(); err != nil {
				return err
			}
			var err error
			if more, err = p.next(']'); err != nil {
				return err
			}
		}
	}
	p.i++ // ']'
	return nil
}

// skip reads any JSON value and returns its bytes.
func (p *atomParser) skip() ([]byte, error) {
	start := p.peekAt()
	var err error
	switch p.peek() {
	case '"':
		_, err = p.str()
	case '{':
		err = p.object(func(string) error { _, err := p.skip(); return err })
	case '[':
		err = p.array(func() error { _, err := p.skip(); return err })
	default: // a number, true, false or null
		for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' ||
			p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] >= 'a' && p.b[p.i] <= 'z' || p.b[p.i] == 'E') {
			p.i++
		}
		if p.i == start {
			err = p.errorf("want a value")
		}
	}
	return p.b[start:p.i], err
}

// peekAt skips space and returns the position.
func (p *atomParser) peekAt() int {
	p.ws()
	return p.i
}

// stringMap reads a map<string, string>: nil when empty.
func (p *atomParser) stringMap() (map[string]string, error) {
	var out map[string]string
	err := p.pairs(func() error {
		k, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(','); err != nil {
			return err
		}
		v, err := p.str()
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
		return err
	})
	return out, err
}

// uuidSet reads a set<uuid>.
func (p *atomParser) uuidSet() ([]string, error) {
	var out []string
	err := p.set(func() error {
		u, err := p.uuid()
		out = append(out, u)
		return err
	})
	return out, err
}

// optString reads a string column with min 0, max 1: nil when empty.
func (p *atomParser) optString() (*string, error) {
	var out []string
	err := p.set(func() error {
		v, err := p.str()
		out = append(out, v)
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case len(out) > 1:
		return nil, p.errorf("%d strings where at most one is allowed", len(out))
	case len(out) == 1:
		return &out[0], nil
	}
	return nil, nil
}

// optInt reads an integer column with min 0, max 1: nil when empty.
func (p *atomParser) optInt() (*int, error) {
	var out []int
	err := p.set(func() error {
		n, err := p.integer()
		out = append(out, n)
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case len(out) > 1:
		return nil, p.errorf("%d integers where at most one is allowed", len(out))
	case len(out) == 1:
		return &out[0], nil
	}
	return nil, nil
}
