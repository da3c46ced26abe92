package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of StaticConfig.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultResync   = time.Minute
)

// StaticConfig configures the file-backed Source.
type StaticConfig struct {
	Path   string       // the YAML cluster file
	Logger *slog.Logger // nil: discard

	// OnInvalid is called for every rejected version of the file (it does
	// not parse or validate, or cannot be read, e.g. it was deleted), once
	// per distinct problem. Wire a counter here. It runs on Run's
	// goroutine and must not block.
	OnInvalid func(error)

	// Debounce is how long to wait after the first file event of a burst
	// before reading the file, so that a multi-step save is read once.
	Debounce time.Duration
	// Resync is the period of the safety-net re-read, which also catches
	// what directory events cannot show (the path is a symlink to a file
	// in another directory, the directory was replaced).
	Resync time.Duration
}

// Static is the default Source: one YAML file, watched for changes. When a
// new version of the file is invalid, the last good view stays in force.
type Static struct {
	cfg     StaticConfig
	log     *slog.Logger
	updates chan View
	running atomic.Bool

	mu      sync.Mutex
	current View

	// Owned by NewStatic, then by Run's goroutine.
	lastSum [sha256.Size]byte
	lastErr string

	reloaded func(reloadResult) // test hook, called after every read
}

var _ Source = (*Static)(nil)

// reloadResult says what one read of the file led to.
type reloadResult string

const (
	resultUpdated   reloadResult = "updated"    // a new view was published
	resultSameBytes reloadResult = "same-bytes" // the file did not change
	resultSameView  reloadResult = "same-view"  // the file changed, the view did not
	resultInvalid   reloadResult = "invalid"    // rejected: last good view kept
)

// NewStatic reads the file once and fails if it is missing or invalid, so
// that a broken deployment stops at start. The first view is pending on
// Updates when it returns. Call Run to follow changes.
func NewStatic(cfg StaticConfig) (*Static, error) {
	if cfg.Path == "" {
		return nil, errors.New("cluster: static source needs a file path")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	v, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", cfg.Path, err)
	}
	s := &Static{cfg: cfg, log: cfg.Logger.With("path", cfg.Path), updates: make(chan View, 1)}
	s.lastSum = sha256.Sum256(data)
	s.publish(v, View{})
	return s, nil
}

// Updates returns the channel of new views (latest wins, never closed).
func (s *Static) Updates() <-chan View { return s.updates }

// Current returns the view in force. It is always present for a Static.
func (s *Static) Current() (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.current.Revision > 0
}

// Run watches the file's directory, so that rename-and-replace saves and
// Kubernetes ConfigMap symlink swaps are seen, and re-reads the file after
// each burst of events and every Resync period. It returns nil when ctx
// ends, or an error when the watch cannot be set up. Call it once.
func (s *Static) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("cluster: static source is already running")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cluster: file watch: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.cfg.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("cluster: watch directory %s: %w", dir, err)
	}
	s.reload() // a change between NewStatic and the watch is not lost
	resync := time.NewTicker(s.cfg.Resync)
	defer resync.Stop()
	events, errs := w.Events, w.Errors
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			s.log.Debug("cluster file event", "event", ev.String())
			if settle == nil {
				settle = time.After(s.cfg.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("cluster file watch error; relying on the periodic re-read", "error", err)
		case <-settle:
			settle = nil
			s.reload()
		case <-resync.C:
			if len(w.WatchList()) == 0 { // the directory went away and came back
				_ = w.Add(dir)
			}
			s.reload()
		}
	}
}

// reload reads the file and publishes its view if it is valid and new.
func (s *Static) reload() {
	r := s.read()
	if s.reloaded != nil {
		s.reloaded(r)
	}
}

func (s *Static) read() reloadResult {
	data, err := os.ReadFile(s.cfg.Path)
	if err != nil {
		s.lastSum = [sha256.Size]byte{} // the same content coming back is read again
		s.reject(fmt.Errorf("cluster file: %w", err))
		return resultInvalid
	}
	sum := sha256.Sum256(data)
	if sum == s.lastSum {
		return resultSameBytes
	}
	s.lastSum = sum
	v, err := Parse(data)
	if err != nil {
		s.reject(fmt.Errorf("cluster file %s: %w", s.cfg.Path, err))
		return resultInvalid
	}
	s.lastErr = ""
	cur, _ := s.Current()
	if v.Equal(cur) {
		s.log.Debug("cluster file changed, view did not")
		return resultSameView
	}
	s.publish(v, cur)
	return resultUpdated
}

// reject reports a bad file once per distinct problem.
func (s *Static) reject(err error) {
	if err.Error() == s.lastErr {
		return
	}
	s.lastErr = err.Error()
	cur, _ := s.Current()
	s.log.Warn("cluster file rejected, keeping the last good view", "revision", cur.Revision, "error", err)
	if s.cfg.OnInvalid != nil {
		s.cfg.OnInvalid(err)
	}
}

// publish makes v current and offers it on Updates, replacing a view the
// reader has not taken yet. Only one goroutine publishes at a time, so
// the send after the drain cannot block.
func (s *Static) publish(v, prev View) {
	s.mu.Lock()
	v.Revision = s.current.Revision + 1
	s.mu.Unlock()
	d := Diff(prev, v)
	v.Delta = &d
	s.mu.Lock()
	s.current = v
	s.mu.Unlock()
	s.log.Info("cluster view updated", "revision", v.Revision, "change", d.String())
	Offer(s.updates, v)
}
