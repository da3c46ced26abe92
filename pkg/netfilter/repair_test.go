package netfilter

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// normalized is an nft listing with counters at zero and its blocks
// (tables, sets, chains) sorted: a chain made again is listed last.
func normalized(listing string) string {
	listing = counterRE.ReplaceAllString(listing, "counter packets 0 bytes 0")
	var blocks []string
	for _, b := range strings.Split(listing, "\n\n") {
		b = strings.TrimSpace(b)
		if i := strings.Index(b, "{\n"); strings.HasPrefix(b, "table ") && i >= 0 {
			blocks = append(blocks, b[:i]) // the table's header, then its first block
			b = b[i+2:]
		}
		blocks = append(blocks, strings.TrimSuffix(strings.TrimSpace(b), "\n}"))
	}
	slices.Sort(blocks)
	return squash(strings.Join(blocks, "\n\n"))
}

var handleRE = regexp.MustCompile(`comment "([^"]*)" # handle (\d+)`)

// handle finds, with nft -a, the handle of the rule with that comment.
func (b *bed) handle(t *testing.T, chain, comment string) string {
	t.Helper()
	for _, m := range handleRE.FindAllStringSubmatch(b.nft(t, "-a", "list", "chain", "ip", DefaultTable, chain), -1) {
		if m[1] == comment {
			return m[2]
		}
	}
	t.Fatalf("no rule %q in chain %s", comment, chain)
	return ""
}

// Out-of-band changes are undone within 2 s (measured with nft as the
// observer, from the end of the nft command that made the change).
func TestRepair(t *testing.T) {
	b := newBed(t)
	k := b.keeper(t)
	s := baseState()
	s.Publishes = []Publish{publishBlue("blue1", TCP, 8080, 80)}
	s.Blocked = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	apply(t, k, s)
	run(t, k)
	list := func() string { return normalized(b.nft(t, "list", "table", "ip", DefaultTable)) }
	want := list()
	cases := []struct {
		name    string
		command func() string // the nft script
	}{
		{"flush table", func() string { return "flush table ip ofctl-agent" }},
		{"delete table", func() string { return "delete table ip ofctl-agent" }},
		{"delete a rule", func() string {
			return "delete rule ip ofctl-agent forward handle " + b.handle(t, "forward", "to blue")
		}},
		{"edit a rule, comment kept", func() string {
			return "replace rule ip ofctl-agent to-blue handle " + b.handle(t, "to-blue", "unsolicited") +
				` counter accept comment "unsolicited"`
		}},
		{"insert a rogue rule", func() string { return "insert rule ip ofctl-agent to-red accept" }},
		{"empty the blocked set", func() string { return "flush set ip ofctl-agent blocked" }},
		{"delete a chain", func() string {
			return "flush chain ip ofctl-agent forward; flush chain ip ofctl-agent to-red; delete chain ip ofctl-agent to-red"
		}},
		{"add a chain", func() string { return "add chain ip ofctl-agent rogue" }},
		{"base chain policy drop", func() string {
			return "flush chain ip ofctl-agent forward; delete chain ip ofctl-agent forward; " +
				"add chain ip ofctl-agent forward { type filter hook forward priority 0; policy drop; }"
		}},
	}
	mon := startMonitor(t, b.host)
	var worst time.Duration
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repairs := k.Status().Repairs
			script := c.command()
			mark := mon.count()
			b.nft(t, script)
			var change, repair time.Time
			waitFor(t, 2*time.Second, func() bool {
				change, repair = generations(mon.since(mark))
				return !repair.IsZero()
			}, "nft monitor saw no repair after: "+script+"\n"+fmt.Sprint(mon.since(mark)))
			if got := list(); got != want {
				t.Fatalf("after the repair of %q the table is\n%s\nwant\n%s", script, got, want)
			}
			if k.Status().Repairs <= repairs {
				t.Errorf("repaired, but Status.Repairs did not grow")
			}
			took := repair.Sub(change)
			worst = max(worst, took)
			t.Logf("%s: repaired %v after the change (nft monitor)", c.name, took.Round(time.Microsecond))
		})
	}
	t.Logf("slowest repair: %v (repairs counted: %d)", worst.Round(time.Microsecond), k.Status().Repairs)
	if ok, out := ping(b.ctrs["blue1"].ns, outsideIP, 1); !ok {
		t.Fatalf("after the repairs blue cannot reach the outside:\n%s", out)
	}
}

// startMonitor runs `nft monitor` in ns and waits until it reports a
// change (a probe table added and deleted).
func startMonitor(t *testing.T, ns testbed.NetNS) *capture {
	t.Helper()
	mon, _ := startCommand(t, ns, "nft", "monitor")
	waitFor(t, 5*time.Second, func() bool {
		ns.MustExec(t, "nft", "add table ip ofat-probe; delete table ip ofat-probe")
		time.Sleep(20 * time.Millisecond)
		return slices.ContainsFunc(mon.since(0), func(l line) bool { return l.text == "add table ip ofat-probe" })
	}, "nft monitor reported nothing")
	return mon
}

// selfComm is this process's name as the kernel reports it.
func selfComm() string {
	b, _ := os.ReadFile("/proc/self/comm")
	return strings.TrimSpace(string(b))
}

var generationRE = regexp.MustCompile(`^# new generation \d+ by process \d+ \((.*)\)$`)

// generations finds, in nft monitor's lines, when the first transaction of
// the nft command (the change) and the next one of this test's process
// (the repair) ended. (nft monitor names the thread that made a
// transaction, so the test's is told by its name, not its pid.)
func generations(lines []line) (change, repair time.Time) {
	for _, l := range lines {
		m := generationRE.FindStringSubmatch(l.text)
		switch {
		case m == nil:
		case m[1] == "nft" && change.IsZero():
			change = l.at
		case m[1] == selfComm() && !change.IsZero():
			return change, l.at
		}
	}
	return change, time.Time{}
}

// lineEcho answers each line with "echo:" + the line, inside ns.
func lineEcho(t *testing.T, ns testbed.NetNS, addr string) {
	t.Helper()
	l := listen(t, ns, "tcp", addr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo:%s\n", sc.Text())
				}
			}()
		}
	}()
}

func exchange(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "echo:"+msg+"\n" {
		t.Fatalf("reading the echo of %q: %q, %v", msg, line, err)
	}
}

// An agent restart with the same State changes nothing: the new Keeper
// finds every rule in place (same handles), and established connections
// through NAT and through a published port go on.
func TestRestartKeepsConnections(t *testing.T) {
	b := newBed(t)
	blue := b.ctrs["blue1"]
	lineEcho(t, b.outside, outsideIP+":9000")
	lineEcho(t, blue.ns, ":7000")
	s := baseState()
	s.Publishes = []Publish{publishBlue("blue1", TCP, 7000, 7000)}
	first := b.keeper(t)
	apply(t, first, s)
	out := dial(t, blue.ns, outsideIP+":9000")
	in := dial(t, b.outside, hostAddr+":7000")
	outR, inR := bufio.NewReader(out), bufio.NewReader(in)
	exchange(t, out, outR, "before")
	exchange(t, in, inR, "before")
	handles := func() string {
		return counterRE.ReplaceAllString(b.nft(t, "-a", "list", "table", "ip", DefaultTable), "")
	}
	before := handles()
	_ = first.Close()

	second := b.keeper(t)
	apply(t, second, s)
	if st := second.Status(); st.Changes != 0 || !st.InSync {
		t.Fatalf("the restarted Keeper: %+v; want no change, in sync", st)
	}
	if after := handles(); after != before {
		t.Fatalf("rules changed across the restart:\n%s\nwas\n%s", after, before)
	}
	exchange(t, out, outR, "after")
	exchange(t, in, inR, "after")
}

var policyRE = regexp.MustCompile(`policy DROP (\d+) packets`)

// Docker's effect, made with the iptables CLI as dockerd makes it
// (iptables-nft): FORWARD policy DROP, a DOCKER-USER chain jumped to
// first. The Keeper puts its accept rules at the top of DOCKER-USER as
// soon as the chain appears, keeps them there, and the container's
// forwarded traffic passes; isolation still holds (the agent's own table
// drops). A test with a real dockerd comes with the Docker test bed.
func TestDockerForwardDrop(t *testing.T) {
	b := newBed(t)
	blue, red := b.ctrs["blue1"], b.ctrs["red1"]
	k := b.keeper(t)
	apply(t, k, baseState())
	run(t, k)
	if ok, out := ping(blue.ns, outsideIP, 1); !ok {
		t.Fatalf("control: blue -> outside failed before Docker:\n%s", out)
	}
	policyDrops := func() uint64 {
		m := policyRE.FindStringSubmatch(b.host.MustExec(t, "iptables", "-L", "FORWARD", "-v", "-x", "-n"))
		if m == nil {
			t.Fatal("no FORWARD policy DROP counters")
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
	b.host.MustExec(t, "iptables", "-P", "FORWARD", "DROP")
	before := policyDrops()
	if ok, _ := ping(blue.ns, outsideIP, 2); ok {
		t.Fatal("with FORWARD's policy DROP and no DOCKER-USER, blue still reached the outside")
	}
	if n := policyDrops() - before; n < 2 {
		t.Fatalf("FORWARD's policy dropped %d packets of 2 pings", n)
	}
	b.host.MustExec(t, "iptables", "-N", "DOCKER-USER")
	b.host.MustExec(t, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
	b.host.MustExec(t, "iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
	want := strings.Join([]string{"-N DOCKER-USER",
		`-A DOCKER-USER -i gw-blue -m comment --comment "ofctl-agent: from gateway blue" -j ACCEPT`,
		`-A DOCKER-USER -o gw-blue -m comment --comment "ofctl-agent: to gateway blue" -j ACCEPT`,
		`-A DOCKER-USER -i gw-red -m comment --comment "ofctl-agent: from gateway red" -j ACCEPT`,
		`-A DOCKER-USER -o gw-red -m comment --comment "ofctl-agent: to gateway red" -j ACCEPT`,
		"-A DOCKER-USER -j RETURN"}, "\n")
	ours := func() bool {
		out, err := b.host.Exec("iptables", "-S", "DOCKER-USER")
		return err == nil && strings.TrimSpace(out) == want
	}
	took := waitFor(t, 2*time.Second, ours, "the accept rules did not appear at the top of DOCKER-USER")
	t.Logf("rules in DOCKER-USER %v after it appeared", took.Round(time.Millisecond))
	if ok, out := ping(blue.ns, outsideIP, 2); !ok {
		t.Fatalf("with the accept rules in DOCKER-USER, blue -> outside failed:\n%s", out)
	}
	listing := b.host.MustExec(t, "iptables", "-L", "DOCKER-USER", "-v", "-n")
	t.Logf("iptables -L DOCKER-USER -v -n:\n%s", listing)
	if !strings.Contains(listing, "/* ofctl-agent: from gateway blue */") {
		t.Fatalf("iptables does not show the rules' comments:\n%s", listing)
	}

	// Isolation still holds through the agent's table.
	drops := b.ruleCounter(t, "to-red", "unsolicited")
	if ok, _ := ping(blue.ns, red.ip.String(), 1); ok {
		t.Fatal("with the accept rules in DOCKER-USER, blue reached red")
	}
	if n := b.ruleCounter(t, "to-red", "unsolicited") - drops; n != 1 {
		t.Fatalf("to-red dropped %d packets of 1 ping", n)
	}

	// Repaired there too: deleted by hand, put back.
	b.host.MustExec(t, "iptables", "-D", "DOCKER-USER", "1")
	took = waitFor(t, 2*time.Second, ours, "the deleted DOCKER-USER rule was not put back")
	t.Logf("DOCKER-USER rule put back after %v", took.Round(time.Millisecond))
}

// Cleanup removes the table and the rules of DOCKER-USER, nothing else:
// the ruleset is what it was before the agent.
func TestCleanup(t *testing.T) {
	b := newBed(t)
	b.host.MustExec(t, "iptables", "-N", "DOCKER-USER")
	b.host.MustExec(t, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
	b.host.MustExec(t, "iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
	before := normalized(b.nft(t, "list", "ruleset"))
	k := b.keeper(t)
	apply(t, k, baseState())
	during := b.nft(t, "list", "ruleset")
	if !strings.Contains(during, "table ip "+DefaultTable) || !strings.Contains(during, `comment "ofctl-agent: to gateway red"`) {
		t.Fatalf("the agent's rules are not in the ruleset:\n%s", during)
	}
	opts := Options{NetNS: b.host.Path()}
	if err := Cleanup(opts); err != nil {
		t.Fatal(err)
	}
	if after := normalized(b.nft(t, "list", "ruleset")); after != before {
		t.Fatalf("after Cleanup the ruleset is\n%s\nwant what it was before the agent:\n%s", after, before)
	}
	if err := Cleanup(opts); err != nil {
		t.Fatalf("a second Cleanup: %v", err)
	}
}
