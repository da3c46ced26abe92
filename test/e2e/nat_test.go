package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// ntCluster: blue on both hosts, red on ha only.
const ntCluster = `networks:
  - {name: blue, vni: 100, subnet: 10.100.0.0/16}
  - {name: red, vni: 200, subnet: 10.200.0.0/16}
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, red: 10.200.1.0/24 }
  - name: hb
    tunnel_ip: 192.0.2.2
    ranges: { blue: 10.100.2.0/24 }
`

// ntBed: hosts ha and hb with agents, an outside namespace behind ha's
// uplink (198.51.100.1 on ha, 198.51.100.2 outside, ha's default route),
// containers attached with the CLI (their default route is the gateway).
type ntBed struct {
	a, b   *testbed.Node
	pa, pb *testbed.Agent
	out    *testbed.Outside
	bin    string
}

type ntCtr struct {
	ns         testbed.NetNS
	ip         string
	port       string // the OVS port
	publishErr string // attach's publish_error
}

func ntNew(t *testing.T) *ntBed {
	t.Helper()
	testbed.Require(t)
	testbed.RequireTools(t, "nft", "tcpdump", "curl", "ping")
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(ntCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	nb := &ntBed{a: testbed.NewNode(t, "ha"), b: testbed.NewNode(t, "hb"), bin: testbed.AgentBinary(t)}
	testbed.Underlay(t, nb.a, nb.b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	nb.out = testbed.AddOutside(t, nb.a)
	nb.pa = agStart(t, nb.a, "ha", "192.0.2.1", file)
	nb.pb = agStart(t, nb.b, "hb", "192.0.2.2", file)
	return nb
}

// attach attaches a new namespace to node n's bridge with the CLI.
func (nb *ntBed) attach(t *testing.T, n *testbed.Node, name, network, ip string, extra ...string) *ntCtr {
	t.Helper()
	ns := testbed.NewNetNS(t, name)
	return nb.attachArgs(t, n, ns, append([]string{"attach", "--network", network, "--ip", ip}, append(extra, ns.Path())...))
}

// attachArgs runs an attach command line for namespace ns on node n,
// adding the node's OVSDB, namespace and agent socket.
func (nb *ntBed) attachArgs(t *testing.T, n *testbed.Node, ns testbed.NetNS, args []string) *ntCtr {
	t.Helper()
	args = append(args, "--ovsdb", n.DBAddr(), "--netns-host", n.NS.Path(), "--agent-socket", testbed.AgentSocket(n), "--json")
	out, err := exec.Command(nb.bin, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", args, err, out)
	}
	var res struct {
		Port, IP     string
		PublishError string `json:"publish_error"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Port == "" {
		t.Fatalf("%s: %v\n%s", args, err, out)
	}
	return &ntCtr{ns: ns, ip: netip.MustParsePrefix(res.IP).Addr().String(), port: res.Port, publishErr: res.PublishError}
}

// readmeAttach runs the README's attach --publish command as written, for
// a namespace of the test in place of /var/run/netns/web.
func (nb *ntBed) readmeAttach(t *testing.T) *ntCtr {
	t.Helper()
	line := rmReadmeCommand(t, "ofctl-agent attach --network blue --publish")
	ns := testbed.NewNetNS(t, "web")
	args := strings.Fields(strings.ReplaceAll(line, "/var/run/netns/web", ns.Path()))[1:]
	return nb.attachArgs(t, nb.a, ns, args)
}

// TestNAT: the gateways' kernel half with real OVS and the real kernel
// packet filter: outbound NAT, published ports and their conflicts,
// isolation through the gateways, repair, restarts, MTU, and a real
// dockerd beside it.
func TestNAT(t *testing.T) {
	top := t // what the subtests make for the later ones
	nb := ntNew(t)
	blue1 := nb.attach(t, nb.a, "blue1", "blue", "10.100.1.10")
	red1 := nb.attach(t, nb.a, "red1", "red", "10.200.1.10")
	web := nb.readmeAttach(t) // --publish 8080:80 --publish 5353:53/udp
	ntServeHTTP(t, web.ns, ":80", "web", nil)
	outside := nb.out.Addr.String()
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	ntServeHTTP(t, nb.out.NS, outside+":80", "outside", body)
	hostURL := "http://" + nb.out.HostAddr.String() + ":8080/"

	t.Run("Outbound", func(t *testing.T) {
		capt := ntCapture(t, nb.out.NS, "eth0", "ip")
		ntPing(t, blue1.ns, outside)
		got := ntCurl(t, blue1.ns, "http://"+outside+"/file", "-o", "/dev/null", "-w", "%{size_download}")
		if got != strconv.Itoa(len(body)) {
			t.Fatalf("downloaded %s bytes, want %d", got, len(body))
		}
		srcs := ntSources(capt.stop(t))
		if len(srcs) != 2 || srcs[nb.out.HostAddr.String()] == 0 || srcs[outside] == 0 {
			t.Fatalf("sources seen outside: %v; want only the host's %s (masqueraded) and the outside's own", srcs, nb.out.HostAddr)
		}
		if v := nb.pa.Metric(t, `ofctl_agent_nat_masquerade_connections_total{network="blue"}`); v < 2 {
			t.Errorf("masqueraded connections of blue: %v, want >= 2 (ping, http)", v)
		}
	})

	t.Run("Published", func(t *testing.T) {
		readme := strings.Fields(rmReadmeCommand(t, "curl http://198.51.100.1:8080/"))[:2] // as written, without its comment
		if got := ntCurl(t, nb.out.NS, readme[1]); got != "hello from web" {
			t.Fatalf("from outside: %q", got)
		}
		if out := nb.a.Exec(t, strings.Fields(strings.Split(rmReadmeCommand(t, "nft list table ip ofctl-agent"), "#")[0])...); !strings.Contains(out, "dnat to "+web.ip+":80") {
			t.Fatalf("the README's nft command does not show the published port:\n%s", out)
		}
		if got := ntCurl(t, nb.a.NS, hostURL); got != "hello from web" {
			t.Fatalf("from the host: %q", got)
		}
		if v := nb.pa.Metric(t, `ofctl_agent_nat_published_connections_total{endpoint="`+web.port+`",host_port="8080",network="blue",protocol="tcp"}`); v < 2 {
			t.Errorf("published connections counted: %v, want >= 2", v)
		}
	})

	t.Run("PublishConflict", func(t *testing.T) {
		before := nb.pa.Metric(t, `ofctl_agent_invalid_inputs_total{kind="publish"}`)
		start := time.Now()
		second := nb.attach(top, nb.a, "web2", "blue", "10.100.1.21", "--publish", "8080:80")
		ntServeHTTP(top, second.ns, ":80", "web2", nil)
		var mark string
		testbed.Eventually(t, 10*time.Second, func() bool {
			mark = ntExternalID(nb.a, second.port, endpoint.KeyPublishError)
			return mark != ""
		}, "no %s mark on %s", endpoint.KeyPublishError, second.port)
		if !strings.Contains(mark, `host port tcp/8080 is taken by "`+web.port+`"`) {
			t.Errorf("mark %q does not name the holder %s", mark, web.port)
		}
		if second.publishErr != mark {
			t.Errorf("attach said publish_error %q, want the mark %q", second.publishErr, mark)
		}
		nb.pa.Logged(t, `kind=publish`, start)
		if v := nb.pa.Metric(t, `ofctl_agent_invalid_inputs_total{kind="publish"}`); v != before+1 {
			t.Errorf("invalid_inputs_total{kind=publish} %v, want %v", v, before+1)
		}
		if got := ntCurl(t, nb.out.NS, hostURL); got != "hello from web" {
			t.Errorf("the holder lost its port: %q", got)
		}
		ntPing(t, second.ns, outside) // its connectivity stays
		if ext := ntExternalID(nb.a, second.port, endpoint.KeyInstalled); ext != second.ip {
			t.Errorf("installed mark %q, want %s", ext, second.ip)
		}
	})

	t.Run("NotMasqueradedAcrossHosts", func(t *testing.T) {
		blueB := nb.attach(t, nb.b, "blueB", "blue", "10.100.2.10")
		capt := ntCapture(t, nb.a.NS, "ul-hb", "proto gre")
		ntPing(t, blue1.ns, blueB.ip)
		lines := strings.Join(capt.stop(t), "\n")
		if !strings.Contains(lines, "IP 10.100.1.10 > 10.100.2.10: ICMP echo request") || !strings.Contains(lines, "IP 10.100.2.10 > 10.100.1.10: ICMP echo reply") ||
			strings.Contains(lines, nb.out.HostAddr.String()) {
			t.Fatalf("GRE on the underlay does not carry the containers' own addresses:\n%s", lines)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		ntPing(t, red1.ns, outside) // both gateways forward: the same path works
		ntPing(t, blue1.ns, outside)
		// Red to blue through both gateways where it is allowed: blue's
		// published port on red's gateway address (a host address).
		if got := ntCurl(t, red1.ns, "http://10.200.1.1:8080/"); got != "hello from web" {
			t.Fatalf("red -> blue's published port through the gateways: %q", got)
		}
		before := nb.pa.Metric(t, `ofctl_agent_nat_dropped_packets_total{network="red",reason="unsolicited"}`)
		(&testbed.Container{Name: "blue1", NS: blue1.ns, IfName: "eth1"}).NoAnswer(t, netip.MustParseAddr(red1.ip), 3)
		if v := nb.pa.Metric(t, `ofctl_agent_nat_dropped_packets_total{network="red",reason="unsolicited"}`); v < before+3 {
			t.Errorf("red's unsolicited drops %v, want >= %v", v, before+3)
		}
	})

	t.Run("Repair", func(t *testing.T) {
		for _, how := range [][]string{{"flush", "table", "ip", netfilter.DefaultTable}, {"delete", "table", "ip", netfilter.DefaultTable}} {
			nb.a.Exec(t, append([]string{"nft"}, how...)...)
			start := time.Now()
			took := testbed.Eventually(t, 5*time.Second, func() bool {
				out, err := nb.a.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable)
				return err == nil && strings.Contains(out, "masquerade") && strings.Contains(out, "dnat to "+web.ip+":80")
			}, "table not repaired after nft %s", how)
			t.Logf("nft %s: repaired in %v", strings.Join(how, " "), took)
			if took > 2*time.Second {
				t.Errorf("nft %s: repaired after %v, want within 2 s", how, time.Since(start))
			}
			if got := ntCurl(t, nb.out.NS, hostURL); got != "hello from web" {
				t.Fatalf("published port after the repair: %q", got)
			}
		}
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		l := testbed.Listen(t, nb.out.NS, "tcp", outside+":7000")
		go ntEcho(l)
		conn := testbed.Dial(t, blue1.ns, outside+":7000")
		r := bufio.NewReader(conn)
		ntEchoOnce(t, conn, r, "before")
		for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
			nb.pa.Stop(sig)
			ntEchoOnce(t, conn, r, "agent stopped by "+sig.String())
			nb.pa.Start(t)
			nb.pa.WaitReady(t, 20*time.Second)
			nb.pa.Logged(t, "model loaded", nb.pa.Started) // the new agent has applied its packet filter
			ntEchoOnce(t, conn, r, "after the restart")
			if changed := ntLoggedSince(t, nb.pa, "netfilter: rules changed", nb.pa.Started); changed != "" {
				t.Errorf("the restarted agent changed its rules (same state: nothing to change):\n%s", changed)
			}
			if got := ntCurl(t, nb.out.NS, hostURL); got != "hello from web" {
				t.Fatalf("published port after %v and a restart: %q", sig, got)
			}
		}
	})

	t.Run("FullSizeSegments", func(t *testing.T) {
		mtu := ntMTU(t, blue1.ns)
		// The outside sends segments, not TSO super-packets, so that
		// tcpdump sees on its side what the wire carries.
		nb.out.NS.MustExec(t, "ethtool", "-K", "eth0", "tso", "off", "gso", "off")
		capt := ntCapture(t, nb.out.NS, "eth0", "tcp port 80", "-v")
		ntCurl(t, blue1.ns, "http://"+outside+"/file", "-o", "/dev/null")
		ntCurl(t, blue1.ns, "http://"+outside+"/upload", "--data-binary", "@/proc/self/exe", "-o", "/dev/null")
		in, out := ntMaxPacket(capt.stop(t), outside)
		if in != mtu || out != mtu {
			t.Fatalf("largest TCP packets (IP length): to the container %d, from it %d; want %d both ways (its MTU)", out, in, mtu)
		}
		t.Logf("container MTU %d: full-size TCP packets of %d bytes both ways", mtu, mtu)
	})

	t.Run("HolderGone", func(t *testing.T) {
		// The waiting endpoint (web2, PublishConflict) gets the port when
		// its holder goes, and its mark is removed.
		nb.a.Vsctl(t, "del-port", "br-int", web.port)
		testbed.Eventually(t, 10*time.Second, func() bool {
			out, err := nb.out.NS.Exec("curl", "-sS", "--max-time", "2", hostURL)
			return err == nil && out == "hello from web2"
		}, "the waiting endpoint did not get the port")
		testbed.Eventually(t, 10*time.Second, func() bool {
			return ntExternalID(nb.a, ntPortOf(t, nb.a, "10.100.1.21"), endpoint.KeyPublishError) == ""
		}, "publish-error mark not removed")
	})

	t.Run("WithDocker", func(t *testing.T) {
		testbed.RequireDocker(t)
		testbed.StartDocker(t, nb.a)
		if out := nb.a.Exec(t, "iptables", "-S", "FORWARD"); !strings.Contains(out, "-P FORWARD DROP") {
			t.Fatalf("dockerd did not set the FORWARD policy to DROP:\n%s", out)
		}
		testbed.Eventually(t, 5*time.Second, func() bool {
			out, _ := nb.a.NS.Exec("iptables", "-S", "DOCKER-USER")
			return strings.Contains(out, "ofctl-agent")
		}, "no accept rules of the agent in DOCKER-USER")
		ntPing(t, blue1.ns, outside)
		if got := ntCurl(t, blue1.ns, "http://"+outside+"/"); got != "hello from outside" {
			t.Fatalf("container -> outside with dockerd: %q", got)
		}
		if got := ntCurl(t, nb.out.NS, hostURL); got != "hello from web2" {
			t.Fatalf("published port with dockerd: %q", got)
		}
		(&testbed.Container{Name: "blue1", NS: blue1.ns, IfName: "eth1"}).NoAnswer(t, netip.MustParseAddr(red1.ip), 3)
	})
}

// ntServeHTTP serves "hello from <name>" at /, body at /file and a sink at
// /upload inside ns.
func ntServeHTTP(t *testing.T, ns testbed.NetNS, addr, name string, body []byte) {
	t.Helper()
	l := testbed.Listen(t, ns, "tcp", addr)
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s", name) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func ntEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() { _, _ = io.Copy(c, c) }()
	}
}

// ntEchoOnce sends a line on an established connection and reads it back.
func ntEchoOnce(t *testing.T, c net.Conn, r *bufio.Reader, what string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", what); err != nil {
		t.Fatalf("%s: the connection through NAT broke: %v", what, err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != what+"\n" {
		t.Fatalf("%s: echo %q, %v", what, got, err)
	}
}

func ntPing(t *testing.T, ns testbed.NetNS, dst string) {
	t.Helper()
	if out, err := ns.Exec("ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", dst); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, ns, err, out)
	}
}

func ntCurl(t *testing.T, ns testbed.NetNS, url string, extra ...string) string {
	t.Helper()
	out, err := ns.Exec(append([]string{"curl", "-sS", "--max-time", "10", url}, extra...)...)
	if err != nil {
		t.Fatalf("curl %s from %s: %v\n%s", url, ns, err, out)
	}
	return out
}

func ntExternalID(n *testbed.Node, port, key string) string {
	out, err := n.NS.Exec("ovs-vsctl", "--db="+n.DBAddr(), "--if-exists", "get", "Interface", port, "external_ids:"+key)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(out)
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

var ntMTURE = regexp.MustCompile(`mtu (\d+)`)

func ntMTU(t *testing.T, ns testbed.NetNS) int {
	t.Helper()
	m := ntMTURE.FindStringSubmatch(ns.MustExec(t, "ip", "link", "show", "eth1"))
	if m == nil {
		t.Fatal("no MTU on eth1")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ntCapture is tcpdump in ns until stop.
type ntCaptureT struct {
	cmd *exec.Cmd
	buf *bytes.Buffer
}

func ntCapture(t *testing.T, ns testbed.NetNS, ifname, filter string, flags ...string) *ntCaptureT {
	t.Helper()
	var buf bytes.Buffer
	cmd := exec.Command("ip", append(append([]string{"netns", "exec", string(ns), "tcpdump", "-n", "-l", "-i", ifname}, flags...), filter)...)
	cmd.Stdout = &buf
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	listening := make(chan struct{})
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-listening:
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump did not start")
	}
	return &ntCaptureT{cmd: cmd, buf: &buf}
}

func (c *ntCaptureT) stop(t *testing.T) []string {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // the last packets' lines
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	return strings.Split(strings.TrimSpace(c.buf.String()), "\n")
}

var ntSrcRE = regexp.MustCompile(`^\S+ IP (\d+\.\d+\.\d+\.\d+)`)

func ntSources(lines []string) map[string]int {
	out := map[string]int{}
	for _, l := range lines {
		if m := ntSrcRE.FindStringSubmatch(l); m != nil {
			out[m[1]]++
		}
	}
	return out
}

// ntIPLenRE matches tcpdump -v's two lines of a packet: the IP header's
// total length, then the source address.
var ntIPLenRE = regexp.MustCompile(`proto TCP \(6\), length (\d+)\)\n\s+(\d+\.\d+\.\d+\.\d+)\.\d+ >`)

// ntMaxPacket returns the largest TCP packets (IP total length) sent by
// others to outside (in) and by outside (out).
func ntMaxPacket(lines []string, outside string) (in, out int) {
	for _, m := range ntIPLenRE.FindAllStringSubmatch(strings.Join(lines, "\n"), -1) {
		n, _ := strconv.Atoi(m[1])
		if m[2] == outside {
			out = max(out, n)
		} else {
			in = max(in, n)
		}
	}
	return in, out
}

// ntPortOf is the port whose endpoint address is ip.
func ntPortOf(t *testing.T, n *testbed.Node, ip string) string {
	t.Helper()
	out := strings.TrimSpace(n.Vsctl(t, "--bare", "--columns=name", "find", "Interface", "external_ids:"+endpoint.KeyIP+"="+ip))
	if out == "" {
		t.Fatalf("no port with address %s", ip)
	}
	return out
}

// ntLoggedSince returns the agent's log lines with substr logged at or
// after since ("": none).
func ntLoggedSince(t *testing.T, a *testbed.Agent, substr string, since time.Time) string {
	t.Helper()
	b, err := os.ReadFile(a.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		l := testbed.LogLine{Line: line}
		if at, err := time.Parse(time.RFC3339Nano, l.Attr("time")); err == nil && !at.Before(since) && strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestNATUnderlayOverlap: a network with NAT on whose subnet overlaps the
// underlay (192.0.2.0/24 here) is refused by the packet filter: a log
// line, invalid_inputs_total{kind="nat"}, no rule for it; the other
// networks keep theirs. With nat: false the same subnet is routed, not
// refused.
func TestNATUnderlayOverlap(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "nft")
	for _, nat := range []bool{true, false} {
		t.Run(fmt.Sprintf("nat=%v", nat), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cluster.yaml")
			cluster := fmt.Sprintf(`networks:
  - {name: blue, vni: 100, subnet: 10.100.0.0/16}
  - {name: clash, vni: 300, subnet: 192.0.2.0/24, nat: %v}
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, clash: 192.0.2.128/25 }
  - name: hb
    tunnel_ip: 192.0.2.2
`, nat)
			if err := os.WriteFile(file, []byte(cluster), 0o644); err != nil {
				t.Fatal(err)
			}
			a, b := testbed.NewNode(t, "ha"), testbed.NewNode(t, "hb")
			testbed.Underlay(t, a, b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
			p := agStart(t, a, "ha", "192.0.2.1", file)
			var table string
			testbed.Eventually(t, 10*time.Second, func() bool {
				table, _ = a.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable)
				return strings.Contains(table, `comment "masquerade blue"`)
			}, "no masquerade rule for blue")
			refused := p.Metric(t, `ofctl_agent_invalid_inputs_total{kind="nat"}`)
			if nat {
				p.Logged(t, `overlaps the underlay (192.0.2.0/24) and NAT is on`, p.Started)
				if refused != 1 || strings.Contains(table, "clash") {
					t.Fatalf("invalid_inputs{kind=nat} %v (want 1); the table must have no rule for clash:\n%s", refused, table)
				}
				return
			}
			if refused != 0 || !strings.Contains(table, `jump to-clash`) || strings.Contains(table, `comment "masquerade clash"`) {
				t.Fatalf("nat: false: invalid_inputs{kind=nat} %v (want 0); clash routed (filtered, not masqueraded):\n%s", refused, table)
			}
		})
	}
}

// TestNATStaleTable: an agent restarted with no network served any more
// (gateway: false, changed while it was down) takes the earlier run's NAT
// and published-port rules out of the kernel, rather than leaving them.
func TestNATStaleTable(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "nft")
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	write := func(gateway bool) {
		t.Helper()
		c := fmt.Sprintf("networks:\n  - {name: blue, vni: 100, subnet: 10.100.0.0/16, gateway: %v}\nhosts:\n  - name: ha\n    tunnel_ip: 192.0.2.1\n    ranges: { blue: 10.100.1.0/24 }\n", gateway)
		if err := os.WriteFile(file, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	n := testbed.NewNode(t, "ha")
	p := agStart(t, n, "ha", "192.0.2.1", file)
	testbed.Eventually(t, 10*time.Second, func() bool {
		out, _ := n.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable)
		return strings.Contains(out, `comment "masquerade blue"`)
	}, "no masquerade rule for blue")
	p.Stop(syscall.SIGKILL)
	write(false)
	p.Start(t)
	p.WaitReady(t, 20*time.Second)
	p.Logged(t, "model loaded", p.Started)
	if out, err := n.NS.Exec("nft", "list", "table", "ip", netfilter.DefaultTable); err != nil || strings.Contains(out, "blue") {
		t.Fatalf("after a restart without networks the earlier rules are still there (%v):\n%s", err, out)
	}
}
