package main

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// The agent's half of the restart handoff, with a fake systemd: storeDNS
// sends the sockets to NOTIFY_SOCKET (after dropping the earlier ones), a
// query sent while no process serves them waits, and the next process,
// given them as systemd does (LISTEN_FDS from fd 3, here from a higher
// number), answers it.
func TestDNSHandoff(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	notify := filepath.Join(t.TempDir(), "notify")
	fake, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	t.Setenv("NOTIFY_SOCKET", notify)

	addr := netip.MustParseAddr("127.53.0.1")
	serve := func(listen resolver.ListenFunc) *resolver.Server {
		s, err := resolver.New(resolver.Config{Port: 5353, Upstreams: []netip.AddrPort{}, Listen: listen, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		// Names first, as the agent does: a query waiting in an inherited
		// socket is answered as soon as SetNetwork serves it.
		_ = s.Names().Set("blue", resolver.Record{Key: "k", Name: "c2", Addr: netip.MustParseAddr("10.100.0.6")})
		s.Names().SetSynced(true)
		if err := s.SetNetwork("blue", addr, netip.MustParsePrefix("127.0.0.0/8")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := serve(nil)
	storeDNS(old, log)
	old.Close()

	// What the fake systemd got: the removal, then two sockets under "dns".
	var got []string
	var fds []int
	buf, oob := make([]byte, 256), make([]byte, 256)
	for range 2 {
		_ = fake.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, oobn, _, _, err := fake.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.ReplaceAll(string(buf[:n]), "\n", " "))
		if oobn > 0 {
			msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				r, _ := syscall.ParseUnixRights(&m)
				fds = append(fds, r...)
			}
		}
	}
	if strings.Join(got, "|") != "FDSTOREREMOVE=1 FDNAME=dns|FDSTORE=1 FDNAME=dns" || len(fds) != 2 {
		t.Fatalf("notify messages %q with %d files", got, len(fds))
	}

	// A query while nothing serves: it waits in the stored socket.
	answer := make(chan *dns.Msg, 1)
	go func() {
		m := new(dns.Msg)
		m.SetQuestion("c2.blue.ofctl.internal.", dns.TypeA)
		c := &dns.Client{Timeout: 10 * time.Second}
		r, _, _ := c.Exchange(m, netip.AddrPortFrom(addr, 5353).String())
		answer <- r
	}()
	time.Sleep(200 * time.Millisecond)

	// The next process: systemd's LISTEN_* with an unrelated fd first.
	devnull, _ := os.Open(os.DevNull)
	base := 300
	for i, fd := range append([]int{int(devnull.Fd())}, fds...) {
		if err := syscall.Dup3(fd, base+i, 0); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"LISTEN_PID": strconv.Itoa(os.Getpid()), "LISTEN_FDS": "3", "LISTEN_FDNAMES": "other:dns:dns"}
	files := inheritedDNS(func(k string) string { return env[k] }, os.Getpid(), base)
	if len(files) != 2 {
		t.Fatalf("inherited %d files, want the 2 named dns", len(files))
	}
	if none := inheritedDNS(func(k string) string { return map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "3"}[k] }, os.Getpid(), base); none != nil {
		t.Fatal("took files passed to another process")
	}
	in, err := resolver.Inherit(files, func(netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
		t.Error("opened new sockets instead of the inherited ones")
		return resolver.ListenFreebind(netip.AddrPortFrom(addr, 5353))
	})
	if err != nil {
		t.Fatal(err)
	}
	next := serve(in.Listen)
	defer next.Close()
	select {
	case r := <-answer:
		if r == nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "10.100.0.6") {
			t.Fatalf("the waiting query got %v", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting query was never answered")
	}
	for _, fd := range fds {
		syscall.Close(fd)
	}
	syscall.Close(base)
	devnull.Close()
}
