package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
	"github.com/ofctl-agent/ofctl-agent/pkg/cniplugin"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestCNIKilledAdd: an ADD killed between the agent's allocation and its
// OVS port (SIGKILLed by a proxy of the agent's socket once the agent has
// allocated, before the answer reaches the plugin) holds its address, is
// listed with its owner and counted as an allocation waiting for its port;
// GC with a valid list that omits it, or DEL of its container, frees the
// address at once (not after the 2-minute TTL): the list no longer has it
// and the next ADD gets that address. The live containers' ports stay
// (ovs-vsctl) and their addresses are on their interfaces (ip). The
// plugin's logFile has what GC released and why an ADD failed.
func TestCNIKilledAdd(t *testing.T) {
	testbed.Require(t)
	bin := cniBin(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testbed.NewNode(t, "ha")
	pa := agStart(t, a, "ha", "192.0.2.1", file)
	h := newCNIHost(t, a, bin)
	api := agentapi.NewClient(testbed.AgentSocket(a))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// add runs the plugin's ADD for container id in a new namespace and
	// returns the address the container's eth0 has (ip as the observer).
	add := func(t *testing.T, id string) netip.Addr {
		t.Helper()
		ns := atNewNS(t, "cnik")
		out, err := h.plugin("ADD", id, atNSPath(ns), "eth0", h.pluginConf(""))
		if err != nil {
			t.Fatalf("ADD %s: %v %s", id, err, out)
		}
		r := parseCNI(t, out)
		p := netip.MustParsePrefix(r.IPs[0].Address)
		if got := atMustCmd(t, "ip", "-n", ns, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, p.String()) {
			t.Fatalf("eth0 of %s: %s, want %s", id, got, p)
		}
		return p.Addr()
	}
	// listed is the allocation of (id, eth0) in the agent's list.
	listed := func(t *testing.T, id string) (agentapi.Allocated, bool) {
		t.Helper()
		l, err := api.Allocations(ctx, "blue", cniplugin.Owner+":")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, x := range l {
			if x.Owner == attach.Owner(cniplugin.Owner, id, "eth0") {
				return x, true
			}
		}
		return agentapi.Allocated{}, false
	}
	// killed runs the plugin's ADD for container id through a proxy of
	// the agent's socket that kills the plugin (SIGKILL, as a runtime's
	// timeout does) once the agent has allocated its address and before
	// the answer reaches it: the agent holds the allocation, no port
	// exists. It returns the address the agent lists for (id, eth0).
	killed := func(t *testing.T, id string) netip.Addr {
		t.Helper()
		var victim atomic.Int64
		proxy := killingProxy(t, testbed.AgentSocket(a), func() int { return int(victim.Load()) })
		conf := strings.Replace(h.pluginConf(""), testbed.AgentSocket(a), proxy, 1)
		cmd := exec.Command("ip", "netns", "exec", string(a.NS), filepath.Join(bin, "ofctl-cni"))
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_NETNS=" + atNSPath(atNewNS(t, "cnix")), "CNI_IFNAME=eth0",
			"CNI_PATH=" + bin, "PATH=" + os.Getenv("PATH")}
		cmd.Stdin = strings.NewReader(conf)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		victim.Store(int64(cmd.Process.Pid))
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("ADD %s was not killed: %v %s", id, err, out.String())
		}
		if p := cniPort(t, a, id); p != "" {
			t.Fatalf("the killed ADD of %s made port %s", id, p)
		}
		x, ok := listed(t, id)
		if !ok || x.Port != "" || x.Expires.IsZero() {
			t.Fatalf("the killed ADD's allocation %+v (%v): want one without a port, with its expiry", x, ok)
		}
		return x.IP
	}
	waiting := func() float64 {
		return pa.Metric(t, `ofctl_agent_addresses_held{holder="allocation",network="blue"}`)
	}

	logFile := filepath.Join(t.TempDir(), "log", "ofctl-cni.log")
	logAt := `,"logFile":"` + logFile + `"`
	readLog := func(t *testing.T) string {
		t.Helper()
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatalf("the plugin's log file: %v", err)
		}
		return string(data)
	}

	live := add(t, "live")
	if x, ok := listed(t, "live"); !ok || x.IP != live || x.Port == "" || x.Port != cniPort(t, a, "live") {
		t.Fatalf("live container's allocation %+v (%v): want %s held by its port %s", x, ok, live, cniPort(t, a, "live"))
	}

	t.Run("GC without the killed ADD's container", func(t *testing.T) {
		k := killed(t, "killed-gc")
		// An independent observer of the list: curl on the agent's socket,
		// as README's troubleshooting table says.
		if out := atMustCmd(t, "curl", "-sf", "--unix-socket", testbed.AgentSocket(a), "http://agent/v1/addresses?network=blue"); !strings.Contains(out, `"ip":"`+k.String()+`","owner":"cni:killed-gc/eth0","expires":`) {
			t.Fatalf("curl's list lacks the killed ADD's allocation of %s: %s", k, out)
		}
		if n := waiting(); n != 1 {
			t.Fatalf("addresses held by allocations waiting for a port: %v, want 1", n)
		}
		bystander := add(t, "bystander")
		if bystander == k {
			t.Fatalf("the killed ADD's %s was handed out again while held", k)
		}
		valid := `,"cni.dev/valid-attachments":[{"containerID":"live","ifname":"eth0"},{"containerID":"bystander","ifname":"eth0"}]`
		if out, err := h.plugin("GC", "", "", "", h.pluginConf(valid+logAt)); err != nil {
			t.Fatalf("GC: %v %s", err, out)
		}
		if got := readLog(t); !strings.Contains(got, `msg="gc: released address" cmd=GC`) || !strings.Contains(got, "ip="+k.String()+" container=killed-gc ifname=eth0") {
			t.Errorf("the plugin's log file has no line for the released %s:\n%s", k, got)
		}
		if x, ok := listed(t, "killed-gc"); ok {
			t.Fatalf("GC left the allocation %+v", x)
		}
		if n := waiting(); n != 0 {
			t.Fatalf("addresses held by allocations waiting for a port after GC: %v, want 0", n)
		}
		for _, id := range []string{"live", "bystander"} {
			if cniPort(t, a, id) == "" {
				t.Fatalf("GC removed the port of valid container %s", id)
			}
		}
		if got := add(t, "after-gc"); got != k {
			t.Fatalf("the next ADD got %s, want the killed ADD's %s back", got, k)
		}
	})
	t.Run("DEL of the killed ADD's container", func(t *testing.T) {
		k := killed(t, "killed-del")
		for range 2 { // DEL is idempotent
			if out, err := h.plugin("DEL", "killed-del", "", "eth0", h.pluginConf("")); err != nil {
				t.Fatalf("DEL: %v %s", err, out)
			}
		}
		if x, ok := listed(t, "killed-del"); ok {
			t.Fatalf("DEL left the allocation %+v", x)
		}
		if got := add(t, "after-del"); got != k {
			t.Fatalf("the next ADD got %s, want the killed ADD's %s back", got, k)
		}
		if x, ok := listed(t, "live"); !ok || x.IP != live {
			t.Fatalf("the live container's allocation changed: %+v (%v)", x, ok)
		}
	})
	t.Run("a failed ADD in the log file", func(t *testing.T) {
		// The runtime gets the error on stdout; the operator finds it in
		// the log file, with the container.
		conf := strings.Replace(h.pluginConf(logAt), `"name":"blue"`, `"name":"green"`, 1)
		out, err := h.plugin("ADD", "failed-add", atNSPath(atNewNS(t, "cnif")), "eth0", conf)
		if r := parseCNI(t, out); err == nil || r.Code != 7 {
			t.Fatalf("ADD in an unknown network: %v %s", err, out)
		}
		if got := readLog(t); !strings.Contains(got, `msg="ofctl-cni ADD failed" cmd=ADD`) || !strings.Contains(got, "container=failed-add") ||
			!strings.Contains(got, "network green is not in the agent's cluster view") {
			t.Errorf("the plugin's log file has no line for the failed ADD:\n%s", got)
		}
	})
	// The agent counts the plugin's calls (the plugin exports nothing).
	for call, least := range map[string]float64{"list": 1, "release": 2, "allocate": 6, "network": 6} {
		if n := pa.Metric(t, `ofctl_agent_api_requests_total{call="`+call+`",result="ok"}`); n < least {
			t.Errorf("api_requests_total{call=%q,result=\"ok\"} = %v, want at least %v", call, n, least)
		}
	}
	if expired := pa.Metric(t, `ofctl_agent_address_allocations_expired_total{network="blue"}`); expired != 0 {
		t.Errorf("%v allocations expired: the cleanup should have been GC's and DEL's, not the TTL's", expired)
	}
}

// killingProxy serves the agent's API on a socket of its own, passing
// every request to the agent on agentSock; once the agent has answered an
// allocation, it kills the process group of victim() (SIGKILL) and waits
// for it to be gone before the answer would go back.
func killingProxy(t *testing.T, agentSock string, victim func() int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "okp") // short: a socket path has 108 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "agent"})
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", agentSock)
	}}
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodPost || r.Request.URL.Path != "/v1/addresses" || r.StatusCode != http.StatusOK {
			return nil
		}
		pid := victim()
		if pid <= 0 {
			return errors.New("no process to kill")
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for syscall.Kill(pid, 0) == nil { // gone, or a zombie its parent has not reaped yet
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}
