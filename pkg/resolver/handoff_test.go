package resolver

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestHandoffInProcess: one server's Files, inherited by a second server,
// answer on the same addresses; an address not handed over is opened anew;
// a file that is no socket is refused.
func TestHandoffInProcess(t *testing.T) {
	s := newTestServer(t, Config{})
	loadNames(t, s)
	files, err := s.Files()
	if err != nil || len(files) != 4 {
		t.Fatalf("Files() = %d files, %v; want 2 per network", len(files), err)
	}
	regular, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := Inherit(append(files, regular), nil)
	if err == nil || !strings.Contains(err.Error(), "not-a-socket") {
		t.Errorf("Inherit of a regular file: %v", err)
	}
	s.Close() // the old process goes; the sockets stay open in in

	s2, err := New(Config{Port: s.cfg.Port, Listen: in.Listen, Names: s.Names(), Logger: quiet(), Upstreams: []netip.AddrPort{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	green, greenNet := ip("127.30.0.1"), netip.MustParsePrefix("127.30.0.0/16")
	for _, n := range []struct {
		name string
		gw   netip.Addr
		net  netip.Prefix
	}{{"blue", blueGW, blueNet}, {"green", green, greenNet}} {
		if err := s2.SetNetwork(n.name, n.gw, n.net); err != nil {
			t.Fatal(err)
		}
	}
	in.CloseUnused() // red's sockets: red is not served any more
	if r := ask(t, s2, blueGW, blueC, "udp", question("web.", dns.TypeA)); len(addrsOf(r)) != 2 {
		t.Errorf("inherited UDP socket: %v", r)
	}
	if r := ask(t, s2, blueGW, blueC, "tcp", question("web.", dns.TypeA)); len(addrsOf(r)) != 2 {
		t.Errorf("inherited TCP listener: %v", r)
	}
	if r := ask(t, s2, green, ip("127.30.0.9"), "udp", question("web.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("new network on a new socket: %v", r)
	}
	if _, err := exchangeFrom(s2, redGW, redC, "tcp", question("web.", dns.TypeA)); err == nil {
		t.Error("red's unused inherited socket still accepts")
	}
}
