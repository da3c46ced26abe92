package netfilter

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// echoUDP answers every datagram with "echo:" + its payload, inside ns.
func echoUDP(t *testing.T, ns testbed.NetNS, addr string) {
	t.Helper()
	var pc net.PacketConn
	inNS(t, ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err })
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
}

// askUDP sends msg to addr from inside ns and returns the answer.
func askUDP(t *testing.T, ns testbed.NetNS, addr, msg string) (string, error) {
	t.Helper()
	var c net.Conn
	inNS(t, ns, func() (err error) { c, err = net.Dial("udp", addr); return err })
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func publishBlue(endpoint string, proto Proto, hostPort, port uint16) Publish {
	return Publish{Network: "blue", Endpoint: endpoint, Proto: proto, HostPort: hostPort, IP: netip.MustParseAddr("10.100.1.5"), Port: port}
}

// A published port answers from the outside, from the host itself (its
// uplink and gateway addresses), from a container of the same network
// (hairpin) and from one of another network; a UDP port too. A second
// endpoint asking for the same port is refused, once, and the first keeps
// it.
func TestPublishedPorts(t *testing.T) {
	b := newBed(t)
	blue, red := b.ctrs["blue1"], b.ctrs["red1"]
	serveHTTP(t, blue.ns, ":80", "blue1", nil)
	echoUDP(t, blue.ns, ":53")
	url := "http://" + hostAddr + ":8080/"
	if out, err := curl(b.outside, url); err == nil {
		t.Fatalf("port 8080 of the host answered before it was published: %s", out)
	}
	k := b.keeper(t)
	s := baseState()
	s.Publishes = []Publish{publishBlue("blue1", TCP, 8080, 80), publishBlue("blue1", UDP, 5353, 53)}
	apply(t, k, s)

	from := []struct {
		name string
		ns   testbed.NetNS
		url  string
	}{
		{"outside", b.outside, url},
		{"host", b.host, url},
		{"host via the gateway address", b.host, "http://10.100.0.1:8080/"},
		{"same network (hairpin)", blue.ns, url},
		{"other network", red.ns, url},
	}
	for _, f := range from {
		if out, err := curl(f.ns, f.url); err != nil || out != "hello from blue1" {
			t.Errorf("%s: GET %s = %q, %v; want hello from blue1", f.name, f.url, out, err)
		}
	}
	if got, err := askUDP(t, b.outside, hostAddr+":5353", "hi"); err != nil || got != "echo:hi" {
		t.Errorf("UDP from outside: %q, %v", got, err)
	}

	// Another endpoint asks for tcp/8080: refused once, blue1 keeps it.
	s.Publishes = append(s.Publishes, Publish{Network: "red", Endpoint: "red1", Proto: TCP, HostPort: 8080,
		IP: netip.MustParseAddr("10.200.1.5"), Port: 80})
	refused, err := k.Apply(s)
	if err != nil || len(refused) != 1 || !errors.Is(refused[0], ErrConflict) || !strings.Contains(refused[0].Error(), `taken by "blue1"`) {
		t.Fatalf("second publish of tcp/8080: refused %v, err %v; want one conflict", refused, err)
	}
	if refused, _ := k.Apply(s); len(refused) != 0 || len(k.Refused()) != 1 {
		t.Errorf("the same conflict again: new refusals %v (want none), Refused %v (want it)", refused, k.Refused())
	}
	if out, err := curl(b.outside, url); err != nil || out != "hello from blue1" {
		t.Errorf("after the refused publish, GET %s = %q, %v", url, out, err)
	}

	c, err := k.Counters()
	if err != nil {
		t.Fatal(err)
	}
	p := c.Publishes[0]
	if p.Proto != TCP || p.HostPort != 8080 || p.Connections < 6 || p.Traffic.Packets < 6*4 {
		t.Errorf("tcp/8080 counters %+v: want >= 6 connections and their packets", p)
	}
	if n := b.ruleCounter(t, chainPublished, "tcp/8080 blue1"); n != p.Connections {
		t.Errorf("nft counts %d DNATed connections for tcp/8080, Counters %d", n, p.Connections)
	}
	if n := b.ruleCounter(t, "postrouting", "hairpin blue"); n < 1 {
		t.Errorf("hairpin masquerade counted %d connections", n)
	}
	if u := c.Publishes[1]; u.Proto != UDP || u.Connections != 1 || u.Traffic.Packets != 2 {
		t.Errorf("udp/5353 counters %+v: want 1 connection, 2 packets", u)
	}
}

// A port published by an endpoint stays its own across a restart even if
// the new Keeper gets the contenders in the other order.
func TestPublishHolderSurvivesRestart(t *testing.T) {
	b := newBed(t)
	first := b.keeper(t)
	holder, contender := publishBlue("blue1", TCP, 8080, 80), publishBlue("other", TCP, 8080, 81)
	s := baseState()
	s.Publishes = []Publish{holder, contender}
	if refused, err := first.Apply(s); err != nil || len(refused) != 1 {
		t.Fatalf("refused %v, err %v", refused, err)
	}
	second := b.keeper(t)
	s.Publishes = []Publish{contender, holder}
	refused, err := second.Apply(s)
	if err != nil || len(refused) != 1 || !strings.Contains(refused[0].Error(), `"other"`) {
		t.Fatalf("after a restart: refused %v, err %v; want the contender refused", refused, err)
	}
	if st := second.Status(); st.Changes != 0 {
		t.Errorf("the restarted Keeper changed the kernel %d times, want 0", st.Changes)
	}
}
