package config

import (
	"fmt"
	"strconv"
	"strings"
)

// memoryUnits are the suffixes of memory-limit, those of Go's GOMEMLIMIT.
var memoryUnits = []struct {
	suffix string
	bytes  int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// MemoryLimitBytes parses memory-limit, in GOMEMLIMIT's syntax (a number
// of bytes with an optional B, KiB, MiB, GiB or TiB suffix); 0 or "off"
// is no limit (0).
func (c Config) MemoryLimitBytes() (int64, error) {
	s := strings.TrimSpace(c.MemoryLimit)
	if s == "" || s == "off" {
		return 0, nil
	}
	unit := int64(1)
	for _, u := range memoryUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, unit = rest, u.bytes
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("memory-limit %q: want a size like 128MiB, or off", c.MemoryLimit)
	}
	return n * unit, nil
}
