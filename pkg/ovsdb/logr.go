package ovsdb

import (
	"context"
	"log/slog"

	"github.com/go-logr/logr"
)

// slogSink forwards libovsdb's logr output to slog: its V-levels all become
// Debug (libovsdb logs every reconnect attempt and transaction at V(3..5)),
// its errors Warn.
type slogSink struct {
	log  *slog.Logger
	name string
}

func newLogr(l *slog.Logger) logr.Logger {
	return logr.New(&slogSink{log: l.With("lib", "libovsdb")})
}

func (s *slogSink) Init(logr.RuntimeInfo) {}

func (s *slogSink) Enabled(int) bool {
	return s.log.Enabled(context.Background(), slog.LevelDebug)
}

func (s *slogSink) Info(_ int, msg string, kv ...any) {
	s.log.Debug(s.prefix(msg), kv...)
}

func (s *slogSink) Error(err error, msg string, kv ...any) {
	s.log.Warn(s.prefix(msg), append(kv, "err", err)...)
}

func (s *slogSink) WithValues(kv ...any) logr.LogSink {
	return &slogSink{log: s.log.With(kv...), name: s.name}
}

func (s *slogSink) WithName(name string) logr.LogSink {
	if s.name != "" {
		name = s.name + "/" + name
	}
	return &slogSink{log: s.log, name: name}
}

func (s *slogSink) prefix(msg string) string {
	if s.name == "" {
		return msg
	}
	return s.name + ": " + msg
}
