package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Prefix starts the name of every namespace and directory the test bed makes.
const Prefix = "ofat-"

var binaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip"}

// Require makes sure the test can drive real OVS: it needs root and the OVS
// and iproute2 binaries. Otherwise the test fails when CI=true and is skipped
// elsewhere. Setting OFCTL_NO_OVS=1 skips outside CI (a quick unit run).
func Require(t testing.TB) {
	t.Helper()
	if reason := unusable(); reason != "" {
		missing(t, "real OVS not usable: "+reason)
		return
	}
	cleanLeftoversOnce()
}

// RequireTools is Require for other programs a test runs: it fails (with
// CI=true) or skips when one of tools is not on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, fmt.Sprintf("%s not found: %v", tool, err))
			return
		}
	}
}

// missing fails the test under CI=true and skips it elsewhere.
func missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required in CI: %s", reason)
	}
	t.Skipf("%s (with CI=true this fails)", reason)
}

func unusable() string {
	if os.Getenv("OFCTL_NO_OVS") == "1" && os.Getenv("CI") != "true" {
		return "OFCTL_NO_OVS=1"
	}
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Sprintf("%s not found (run scripts/setup-host.sh)", b)
		}
	}
	return ""
}

// uniqueName returns "ofat-<pid>-<rand>-<name>".
func uniqueName(name string) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s%d-%s-%s", Prefix, os.Getpid(), hex.EncodeToString(b[:]), name)
}

// run executes a command and returns its combined output, or an error that
// carries the command line and its output.
func run(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// mustRun is run that fails the test on error.
func mustRun(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Eventually polls cond every 20ms until it returns true or timeout passes,
// then fails the test with msg. It returns the time cond took to hold.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var leftovers sync.Once

func cleanLeftoversOnce() { leftovers.Do(cleanLeftovers) }
