package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/ofctl-agent/ofctl-agent/pkg/config"
)

// setMemoryLimit applies memory-limit as the Go runtime's soft memory
// limit, unless the GOMEMLIMIT variable sets one (it wins, as in any Go
// program). It returns the limit in force, in bytes (math.MaxInt64: none).
func setMemoryLimit(cfg config.Config, log *slog.Logger) int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return debug.SetMemoryLimit(-1)
	}
	n, _ := cfg.MemoryLimitBytes() // Validate checked it
	if n > 0 {
		debug.SetMemoryLimit(n)
		log.Debug("memory limit", "bytes", n)
	}
	return debug.SetMemoryLimit(-1)
}
