package resolver

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// DefaultResolvConf is where the host's upstream resolvers are read from
// when none are configured.
const DefaultResolvConf = "/etc/resolv.conf"

// ReadResolvConf returns the nameserver addresses of a resolv.conf file, on
// port 53, in order. Lines it does not use (search, options, comments) are
// skipped; a nameserver that is not an IP address is an error.
func ReadResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upstream resolvers: %w", err)
	}
	defer f.Close()
	ups, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("upstream resolvers: %s: %w", path, err)
	}
	return ups, nil
}

func parseResolvConf(r io.Reader) ([]netip.AddrPort, error) {
	var ups []netip.AddrPort
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: nameserver %q: %w", line, f[1], err)
		}
		ups = append(ups, netip.AddrPortFrom(addr, 53))
	}
	return ups, sc.Err()
}
