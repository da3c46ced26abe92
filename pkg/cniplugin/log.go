package cniplugin

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
)

// Where the plugin's log goes. A CNI plugin owns no terminal: stdout is
// the runtime's (the result or the error), and stderr reaches the
// runtime's own log only when the command succeeds (libcni's RawExec
// keeps the plugin's stderr when it printed no error, and drops it
// otherwise). So the configuration's logFile is where an operator finds
// why an ADD failed, what DEL and GC removed, and which clean-up failed;
// the runtime still gets the error itself.

// logLevels are logLevel's values ("": info).
var logLevels = map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError}

// logDest is the part of the configuration read before the command runs,
// so that a configuration the command refuses is logged too.
type logDest struct {
	LogFile  string `json:"logFile"`
	LogLevel string `json:"logLevel"`
}

// forCommand is p with its log also appended to the configuration's
// logFile (if any), each line tagged with the command and the process id
// (runtimes run plugins in parallel), and the function closing that file.
// A file that cannot be opened is reported on p's log; the command goes
// on.
func (p *Plugin) forCommand(cmd string, stdin []byte) (*Plugin, func()) {
	q := *p
	q.Log = p.log().With("cmd", cmd)
	var d logDest
	if json.Unmarshal(stdin, &d) != nil || d.LogFile == "" || !filepath.IsAbs(d.LogFile) {
		return &q, func() {}
	}
	level, ok := logLevels[d.LogLevel]
	if !ok {
		level = slog.LevelInfo
	}
	f, err := openLog(d.LogFile)
	if err != nil {
		q.Log.Warn("cannot open the configuration's logFile: logging to stderr only", "logFile", d.LogFile, "err", err)
		return &q, func() {}
	}
	file := slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})
	q.Log = slog.New(slog.NewMultiHandler(p.log().Handler(), file)).With("cmd", cmd, "pid", os.Getpid())
	return &q, func() { _ = f.Close() }
}

// openLog opens path for appending, making its directory when missing.
// Each record is one write(2) on an O_APPEND file: lines of plugins
// running at once do not interleave.
func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
