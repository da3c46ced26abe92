package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const waitFor = 5 * time.Second

// clusterYAML is a valid file with network blue and one host per name.
func clusterYAML(hosts ...string) string {
	var b strings.Builder
	b.WriteString("networks:\n  - {name: blue, vni: 100, subnet: 10.100.0.0/16}\nhosts:\n")
	for i, h := range hosts {
		fmt.Fprintf(&b, "  - {name: %s, tunnel_ip: 192.0.2.%d, ranges: {blue: 10.100.%d.0/24}}\n", h, i+1, i+1)
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces the file by rename, so no reader sees half of it.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// harness runs a Static and records what it does.
type harness struct {
	t       *testing.T
	src     *Static
	results chan reloadResult
	invalid chan error
}

// startStatic creates the source on path (already written), takes its first
// view, runs it, and waits until the watch is in place.
func startStatic(t *testing.T, path string, resync time.Duration) *harness {
	t.Helper()
	h := &harness{t: t, results: make(chan reloadResult, 256), invalid: make(chan error, 256)}
	src, err := NewStatic(StaticConfig{
		Path:      path,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnInvalid: func(err error) { h.invalid <- err },
		Debounce:  20 * time.Millisecond,
		Resync:    resync,
	})
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	src.reloaded = func(r reloadResult) { h.results <- r }
	h.src = src
	if v := h.nextView(); v.Revision != 1 {
		t.Fatalf("first view has revision %d", v.Revision)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
	})
	h.waitResult(resultSameBytes) // the read Run does once the watch is set
	return h
}

func (h *harness) nextView() View {
	h.t.Helper()
	select {
	case v := <-h.src.Updates():
		return v
	case <-time.After(waitFor):
		h.t.Fatal("no view published")
		return View{}
	}
}

// waitResult waits for a read of the file with the given outcome.
func (h *harness) waitResult(want reloadResult) {
	h.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case r := <-h.results:
			if r == want {
				return
			}
		case <-deadline:
			h.t.Fatalf("no read of the file ended %q", want)
		}
	}
}

func (h *harness) nextInvalid() error {
	h.t.Helper()
	select {
	case err := <-h.invalid:
		return err
	case <-time.After(waitFor):
		h.t.Fatal("OnInvalid not called")
		return nil
	}
}

func (h *harness) noUpdatePending() {
	h.t.Helper()
	select {
	case v := <-h.src.Updates():
		h.t.Fatalf("unexpected update: revision %d %+v", v.Revision, v.Hosts)
	default:
	}
}

func hostNames(v View) string {
	names := make([]string, len(v.Hosts))
	for i, h := range v.Hosts {
		names[i] = h.Name
	}
	return strings.Join(names, ",")
}

// configMapDir lays out a Kubernetes ConfigMap volume: the file is a
// symlink through "..data" to a timestamped directory.
func configMapDir(t *testing.T, dir, content string) string {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "..2026_01_01_v1"), 0o755))
	writeFile(t, filepath.Join(dir, "..2026_01_01_v1", "cluster.yaml"), content)
	must(os.Symlink("..2026_01_01_v1", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/cluster.yaml", filepath.Join(dir, "cluster.yaml")))
	return filepath.Join(dir, "cluster.yaml")
}

// swapConfigMap does what the kubelet does on an update: a new timestamped
// directory, "..data" renamed over to point at it, the old one removed.
func swapConfigMap(t *testing.T, dir, content string) {
	t.Helper()
	old, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := os.MkdirTemp(dir, "..2026_01_02_")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		os.WriteFile(filepath.Join(next, "cluster.yaml"), []byte(content), 0o644),
		os.Symlink(filepath.Base(next), filepath.Join(dir, "..data_tmp")),
		os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")),
		os.RemoveAll(filepath.Join(dir, old)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestStaticFollowsChanges(t *testing.T) {
	tests := []struct {
		name      string
		configMap bool
		change    func(t *testing.T, dir, path, content string)
	}{
		{"rewrite in place", false, func(t *testing.T, _, path, content string) { writeFile(t, path, content) }},
		{"atomic rename", false, func(t *testing.T, _, path, content string) { writeAtomic(t, path, content) }},
		{"remove and write", false, func(t *testing.T, _, path, content string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, content)
		}},
		{"configmap symlink swap", true, func(t *testing.T, dir, _, content string) { swapConfigMap(t, dir, content) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "cluster.yaml")
			if tt.configMap {
				path = configMapDir(t, dir, clusterYAML("a"))
			} else {
				writeFile(t, path, clusterYAML("a"))
			}
			h := startStatic(t, path, time.Hour)
			// Twice: the watch must survive the first change.
			for i, hosts := range [][]string{{"a", "b"}, {"a", "b", "c"}} {
				tt.change(t, dir, path, clusterYAML(hosts...))
				v := h.nextView()
				if got, want := hostNames(v), strings.Join(hosts, ","); got != want || v.Revision != int64(i+2) {
					t.Fatalf("view after change %d: hosts %q revision %d, want %q", i+1, got, v.Revision, want)
				}
				if cur, ok := h.src.Current(); !ok || !cur.Equal(v) || cur.Revision != v.Revision {
					t.Errorf("Current() = %+v, %v", cur, ok)
				}
			}
		})
	}
}

func TestStaticUnchangedIsNotPublished(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	writeFile(t, path, clusterYAML("a"))
	h := startStatic(t, path, time.Hour)

	writeAtomic(t, path, clusterYAML("a")) // same bytes
	h.waitResult(resultSameBytes)
	h.noUpdatePending()

	writeAtomic(t, path, "# only a comment is new\n"+clusterYAML("a"))
	h.waitResult(resultSameView)
	h.noUpdatePending()

	writeAtomic(t, path, clusterYAML("a", "c"))
	if v := h.nextView(); v.Revision != 2 || hostNames(v) != "a,c" {
		t.Fatalf("next view: revision %d hosts %q", v.Revision, hostNames(v))
	}
	if len(h.invalid) != 0 {
		t.Errorf("OnInvalid called: %v", <-h.invalid)
	}
}

func TestStaticInvalidKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	writeFile(t, path, clusterYAML("a"))
	h := startStatic(t, path, time.Hour)
	good, _ := h.src.Current()

	writeAtomic(t, path, clusterYAML("a", "a"))
	h.waitResult(resultInvalid)
	if err := h.nextInvalid(); !strings.Contains(err.Error(), `host "a": duplicate host name`) || !strings.Contains(err.Error(), path) {
		t.Errorf("OnInvalid error: %v", err)
	}
	h.noUpdatePending()
	if cur, _ := h.src.Current(); !cur.Equal(good) || cur.Revision != 1 {
		t.Fatalf("last good view not kept: %+v", cur)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.waitResult(resultInvalid)
	if err := h.nextInvalid(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OnInvalid for a missing file: %v", err)
	}

	writeAtomic(t, path, clusterYAML("a", "b")) // fixed
	if v := h.nextView(); v.Revision != 2 || hostNames(v) != "a,b" {
		t.Fatalf("view after fix: revision %d hosts %q", v.Revision, hostNames(v))
	}
}

func TestStaticResyncCatchesUnwatchedChange(t *testing.T) {
	// The path is a symlink into another directory: events there are not
	// watched, only the periodic re-read sees the change.
	target := filepath.Join(t.TempDir(), "real.yaml")
	writeFile(t, target, clusterYAML("a"))
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	h := startStatic(t, path, 50*time.Millisecond)
	writeFile(t, target, clusterYAML("a", "b"))
	if v := h.nextView(); hostNames(v) != "a,b" {
		t.Fatalf("view after resync: hosts %q", hostNames(v))
	}
}

func TestNewStaticErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := NewStatic(StaticConfig{Path: missing}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "networks:\n  - {name: blue, vni: 0, subnet: 10.0.0.0/8}\n  - {name: blue, vni: 1, subnet: 10.0.0.1/8}\n")
	_, err := NewStatic(StaticConfig{Path: bad})
	if err == nil || !strings.Contains(err.Error(), "vni 0 is outside") || !strings.Contains(err.Error(), "duplicate network name") {
		t.Errorf("invalid file: %v", err)
	}
	if _, err := NewStatic(StaticConfig{}); err == nil {
		t.Error("no path accepted")
	}
}

func TestStaticLatestWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	writeFile(t, path, clusterYAML("a"))
	s, err := NewStatic(StaticConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := Parse([]byte(clusterYAML("a", "b")))
	v3, _ := Parse([]byte(clusterYAML("a", "b", "c")))
	s.publish(v2, View{})
	s.publish(v3, v2)
	got := <-s.Updates()
	if got.Revision != 3 || hostNames(got) != "a,b,c" {
		t.Fatalf("reader got revision %d hosts %q, want the latest", got.Revision, hostNames(got))
	}
	select {
	case v := <-s.Updates():
		t.Fatalf("stale view left on the channel: %d", v.Revision)
	default:
	}
}

func TestStaticRunStopsOnCancel(t *testing.T) {
	before := goleak.IgnoreCurrent()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	writeFile(t, path, clusterYAML("a"))
	s, err := NewStatic(StaticConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// A second Run is refused while the first runs (it may not have
	// started yet: retry until the first has claimed the source).
	deadline := time.Now().Add(waitFor)
	for !s.running.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
	goleak.VerifyNone(t, before)
}
