package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// dmMinChecks is how many checks scripts/demo.sh makes when all goes well;
// fewer "ok" lines mean a check was skipped.
const dmMinChecks = 29

// TestDemo runs `make demo` the way a user does, from two checkouts at once
// (copies of the working tree, uncommitted changes included, in temp dirs),
// and checks with observers of its own (ip netns, /proc, the file system)
// that the two instances do not collide, that `make demo-down` in one
// checkout removes every namespace, process and file that checkout made and
// nothing of the other, and that SIGINT to a running demo's process group
// (Ctrl-C) cleans up as well.
func TestDemo(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "make", "git", "curl", "tcpdump")
	root := dmRepoRoot(t)
	a, b := dmCheckout(t, root), dmCheckout(t, root)
	for _, dir := range []string{a, b} {
		// Whatever happens below: nothing stays up (before the copy goes).
		t.Cleanup(func() { _ = dmCommand(dir, "make", "demo-down").Run() })
	}

	runs := []*dmRun{dmStart(t, a), dmStart(t, b)}
	for _, r := range runs {
		r.waitOK(t)
	}
	ia, ib := runs[0].instance(t), runs[1].instance(t)
	if ia.id == ib.id || ia.runDir == ib.runDir {
		t.Fatalf("two checkouts share an instance: %+v and %+v", ia, ib)
	}
	sa, sb := dmObserve(t, ia), dmObserve(t, ib)
	sa.requireUp(t)
	sb.requireUp(t)

	dmMake(t, a, "demo-down")
	sa.requireGone(t)
	sb.requireUp(t)

	for _, stage := range []string{"== ofctl-agent on each host", "== Containers plumbed", "== Pings across the GRE tunnel"} {
		t.Run("interrupted at "+strings.TrimPrefix(stage, "== "), func(t *testing.T) {
			dmInterrupt(t, a, stage)
			sb.requireUp(t)
		})
	}

	dmMake(t, b, "demo-down")
	sb.requireGone(t)
}

// dmInterrupt starts `make demo` in checkout dir, sends SIGINT to its process
// group once the output shows stage, and checks that everything it made is
// gone when make has exited.
func dmInterrupt(t *testing.T, dir, stage string) {
	t.Helper()
	r := dmStart(t, dir)
	testbed.Eventually(t, 3*time.Minute, func() bool {
		return strings.Contains(r.out.String(), stage) || r.exited()
	}, "demo never reached %q:\n%s", stage, r.out.String())
	if r.exited() {
		t.Fatalf("demo ended before %q:\n%s", stage, r.out.String())
	}
	snap := dmObserve(t, r.instance(t))
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := r.wait(time.Minute)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(r.out.String(), "interrupted: cleaning up") {
		t.Fatalf("after SIGINT: %v, want a failed exit and the cleanup message:\n%s", err, r.out.String())
	}
	t.Logf("interrupted at %q (%d namespaces, %d processes): %v", stage, len(snap.namespaces), len(snap.procs), err)
	snap.requireGone(t)
}

// dmRun is one `make demo` in its own process group.
type dmRun struct {
	dir  string
	cmd  *exec.Cmd
	out  *dmBuffer
	done chan struct{}
	err  error
}

// dmStart starts `make demo` in dir. SIGINT and SIGTERM are reset to their
// defaults for it, as in a terminal: a test run in the background inherits
// SIGINT ignored, and bash cannot trap a signal ignored at its start.
func dmStart(t *testing.T, dir string) *dmRun {
	t.Helper()
	return dmStartTarget(t, dir, "demo")
}

// dmStartTarget is dmStart for another make target (demo-docker).
func dmStartTarget(t *testing.T, dir, target string) *dmRun {
	t.Helper()
	r := &dmRun{dir: dir, out: &dmBuffer{}, done: make(chan struct{})}
	r.cmd = dmCommand(dir, "env", "--default-signal=INT,TERM", "make", "--no-print-directory", target)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		if !r.exited() {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM) // the demo's trap cleans up
			_ = r.wait(time.Minute)
		}
	})
	return r
}

// dmCommand is a command run in checkout dir with the instance settings
// (DEMO_ID, DEMO_DIR, BIN) taken out of the environment: each checkout must
// find its own.
func dmCommand(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DEMO_ID" && k != "DEMO_DIR" && k != "BIN" && k != "MAKEFLAGS" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

func (r *dmRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *dmRun) wait(timeout time.Duration) error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		return fmt.Errorf("make demo still running after %v", timeout)
	}
}

var dmSummaryRE = regexp.MustCompile(`== Summary: (\d+) ok, (\d+) failed`)

// waitOK waits for the demo to end and checks its exit status and summary.
func (r *dmRun) waitOK(t *testing.T) {
	t.Helper()
	if err := r.wait(5 * time.Minute); err != nil {
		t.Fatalf("make demo in %s: %v\n%s", r.dir, err, r.out.String())
	}
	m := dmSummaryRE.FindStringSubmatch(r.out.String())
	if m == nil {
		t.Fatalf("make demo in %s: no summary line:\n%s", r.dir, r.out.String())
	}
	okN, _ := strconv.Atoi(m[1])
	if m[2] != "0" || okN < dmMinChecks {
		t.Fatalf("make demo in %s: %s, want at least %d ok and none failed:\n%s", r.dir, m[0], dmMinChecks, r.out.String())
	}
}

var dmInstanceRE = regexp.MustCompile(`demo: instance (\S+) \(namespaces (\S+)\*, files in (\S+)\)`)

// dmInstance is what a demo run says it uses.
type dmInstance struct{ id, nsPrefix, runDir string }

func (r *dmRun) instance(t *testing.T) dmInstance {
	t.Helper()
	m := dmInstanceRE.FindStringSubmatch(r.out.String())
	if m == nil {
		t.Fatalf("make demo in %s did not name its instance:\n%s", r.dir, r.out.String())
	}
	return dmInstance{id: m[1], nsPrefix: m[2], runDir: m[3]}
}

// dmMake runs a make target in checkout dir and fails the test on error.
func dmMake(t *testing.T, dir, target string) {
	t.Helper()
	out, err := dmCommand(dir, "make", "--no-print-directory", target).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s in %s: %v\n%s", target, dir, err, out)
	}
}

// dmCheckout copies the working tree (tracked and untracked files, not the
// ignored ones: what a clone with the uncommitted changes holds) to a temp
// dir, the second checkout of the issue.
func dmCheckout(t *testing.T, root string) string {
	t.Helper()
	list, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		if err := dmCopy(filepath.Join(root, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// dmCopy copies one file with its mode; a file deleted in the working tree
// (still listed by git) is skipped.
func dmCopy(src, dst string) error {
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, fi.Mode().Perm())
}

func dmRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "demo.sh")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// dmBuffer collects a command's output while the test reads it.
type dmBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *dmBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *dmBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
