package resolver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The integration tests and the benchmark run the resolver as a real
// process in a "host" namespace: this test binary, started again with
// serveEnv set to a config file, serves it instead of running tests (the
// way the agent would: one process, sockets in the host's namespace).

const (
	serveEnv = "OFCTL_RESOLVER_SERVE"
	// fdsEnv: the process was given that many sockets from fd 3 on (as
	// systemd passes them), to serve through Inherit.
	fdsEnv = "OFCTL_RESOLVER_FDS"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(serveEnv); cfg != "" {
		if err := serveProcess(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// processConfig is what a serving process reads (JSON).
type processConfig struct {
	Domain    string              `json:"domain"`
	Port      uint16              `json:"port"`
	Upstreams []netip.AddrPort    `json:"upstreams"`
	Networks  []processNetwork    `json:"networks"`
	Names     map[string][]Record `json:"names"` // by network
}

type processNetwork struct {
	Name    string       `json:"name"`
	Gateway netip.Addr   `json:"gateway"`
	Subnet  netip.Prefix `json:"subnet"`
}

// serveProcess serves path's config until SIGTERM; SIGHUP reloads the
// names (Table.Replace). It prints "ready <unix ns>" once every socket is
// open and "closed <unix ns>" once they are closed again.
func serveProcess(path string) error {
	cfg, err := readProcessConfig(path)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if cfg.Upstreams == nil {
		cfg.Upstreams = []netip.AddrPort{} // never the host's resolv.conf: tests send nothing outside their namespaces
	}
	in, err := inheritedFiles()
	if err != nil {
		return err
	}
	s, err := New(Config{Domain: cfg.Domain, Port: cfg.Port, Upstreams: cfg.Upstreams, Listen: in.Listen,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	// Names first, then the sockets: a query waiting in an inherited
	// socket is answered from the full table, not SERVFAIL.
	if err := loadProcessNames(s, cfg); err != nil {
		return err
	}
	s.Names().SetSynced(true)
	for _, n := range cfg.Networks {
		if err := s.SetNetwork(n.Name, n.Gateway, n.Subnet); err != nil {
			return err
		}
	}
	in.CloseUnused()
	fmt.Printf("ready %d\n", time.Now().UnixNano())
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			break
		}
		if cfg, err = readProcessConfig(path); err == nil {
			err = loadProcessNames(s, cfg)
		}
		fmt.Printf("reloaded %v\n", err)
	}
	s.Close()
	fmt.Printf("closed %d\n", time.Now().UnixNano())
	return nil
}

// inheritedFiles takes the sockets fdsEnv announces.
func inheritedFiles() (*Inherited, error) {
	n, _ := strconv.Atoi(os.Getenv(fdsEnv))
	files := make([]*os.File, n)
	for i := range files {
		files[i] = os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i))
	}
	return Inherit(files, nil)
}

func readProcessConfig(path string) (*processConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := &processConfig{}
	return cfg, json.Unmarshal(b, cfg)
}

func loadProcessNames(s *Server, cfg *processConfig) error {
	for nw, recs := range cfg.Names {
		if err := s.Names().Replace(nw, recs); err != nil {
			return err
		}
	}
	return nil
}

// resolverProcess is a serving process started by a test.
type resolverProcess struct {
	cmd    *exec.Cmd
	lines  chan string
	config string
}

// writeProcessConfig writes cfg where startResolver and SIGHUP read it.
func writeProcessConfig(t testing.TB, path string, cfg *processConfig) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startResolver runs this binary as a resolver in ns with the config file
// and waits for it to serve; it returns when it is ready, and the time.
// With files, the process serves them (fdsEnv) instead of opening sockets.
func startResolver(t testing.TB, ns testbed.NetNS, config string, files ...*os.File) (*resolverProcess, time.Time) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", string(ns), exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+config, fmt.Sprintf("%s=%d", fdsEnv, len(files)))
	cmd.ExtraFiles = files
	cmd.Stderr = &prefixWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &resolverProcess{cmd: cmd, lines: make(chan string, 16), config: config}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p, p.await(t, "ready")
}

// await waits for the process to print word and returns the time it gave.
func (p *resolverProcess) await(t testing.TB, word string) time.Time {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("resolver process exited before %q", word)
			}
			if rest, found := strings.CutPrefix(line, word+" "); found {
				ns, err := strconv.ParseInt(rest, 10, 64)
				if err != nil {
					t.Fatalf("resolver process: %q", line)
				}
				return time.Unix(0, ns)
			}
		case <-timeout:
			t.Fatalf("resolver process: no %q within 20 s", word)
		}
	}
}

// stop sends SIGTERM and waits for the exit; it returns when the sockets
// were closed.
func (p *resolverProcess) stop(t testing.TB) time.Time {
	if p.cmd.ProcessState != nil {
		return time.Time{}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var closed time.Time
	for line := range p.lines {
		if rest, ok := strings.CutPrefix(line, "closed "); ok {
			ns, _ := strconv.ParseInt(rest, 10, 64)
			closed = time.Unix(0, ns)
		}
	}
	_ = p.cmd.Wait()
	return closed
}

// prefixWriter logs the process's log lines in the test's output.
type prefixWriter struct{ t testing.TB }

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.t.Logf("resolver: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

var _ io.Writer = (*prefixWriter)(nil)

// tempConfig returns a config path in the test's temp dir.
func tempConfig(t testing.TB) string { return filepath.Join(t.TempDir(), "resolver.json") }

const sighup = syscall.SIGHUP
