package cniplugin

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// TestLogFile: with logFile, a refused command (its configuration
// included) and what DEL removed are appended to the file, tagged with
// the command and the process; logLevel filters; the plugin's own log
// (stderr) keeps its warnings; a file that cannot be opened leaves the
// command running and says so on stderr.
func TestLogFile(t *testing.T) {
	_, sock := serveIPAM(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "log", "ofctl-cni.log") // its directory is made
	conf := func(extra string) []byte {
		return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"blue","type":"ofctl-cni","agentSocket":%q%s}`, sock, extra))
	}
	withPort := func() *memPorts {
		return &memPorts{ports: []attach.Port{{Name: "ofc1", ExternalIDs: map[string]string{endpoint.KeyOwner: Owner,
			endpoint.KeyContainerID: "c1", endpoint.KeyContainerIface: "eth0", endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.7"}}}}
	}
	read := func() string {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	var stderr strings.Builder
	p := memPlugin(withPort())
	p.Log = slog.New(slog.NewTextHandler(&stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logAt := fmt.Sprintf(`,"logFile":%q`, file)

	if err := p.Funcs().Add(&skel.CmdArgs{ContainerID: "c9", IfName: "eth0", Netns: "/nope", StdinData: conf(logAt + `,"mtu":1`)}); err == nil {
		t.Fatal("ADD with mtu 1 succeeded")
	}
	if err := p.Funcs().Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf(logAt)}); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	got := read()
	for _, want := range []string{fmt.Sprintf(`level=WARN msg="ofctl-cni ADD failed" cmd=ADD pid=%d container=c9`, os.Getpid()), "invalid mtu",
		"level=INFO msg=detached cmd=DEL", "msg=deleted cmd=DEL", "container=c1 ifname=eth0 port=ofc1 ip=10.100.1.7"} {
		if !strings.Contains(got, want) {
			t.Errorf("log file lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 3 {
		t.Errorf("log file has %d lines, want the ADD's failure and the DEL's two:\n%s", n, got)
	}
	if s := stderr.String(); !strings.Contains(s, "ofctl-cni ADD failed") || strings.Contains(s, "msg=deleted") {
		t.Errorf("stderr (warn): %q", s)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi, err)
	}

	t.Run("level", func(t *testing.T) {
		p := memPlugin(withPort())
		if err := p.Funcs().Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf(logAt + `,"logLevel":"warn"`)}); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if n := strings.Count(read(), "msg=deleted"); n != 1 {
			t.Errorf("an info line written at level warn (%d DEL lines)", n)
		}
	})
	t.Run("unusable file", func(t *testing.T) {
		var stderr strings.Builder
		p := memPlugin(withPort())
		p.Log = slog.New(slog.NewTextHandler(&stderr, nil))
		bad := fmt.Sprintf(`,"logFile":%q`, filepath.Join(file, "sub.log")) // under a regular file
		if err := p.Funcs().Del(&skel.CmdArgs{ContainerID: "c1", IfName: "eth0", StdinData: conf(bad)}); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		if s := stderr.String(); !strings.Contains(s, "cannot open the configuration's logFile") || !strings.Contains(s, "msg=deleted") {
			t.Errorf("stderr: %q", s)
		}
	})
}
