package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// exactFlow is the i-th exact-match flow used by the install benchmarks:
// one IPv4 destination and its derived MAC, output to port 1.
type exactFlow struct {
	mac [6]byte
	ip  [4]byte
}

func benchFlow(i int) exactFlow {
	ip := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
	return exactFlow{mac: [6]byte{0x0a, 0x58, ip[0], ip[1], ip[2], ip[3]}, ip: ip}
}

const (
	benchTable    = 0
	benchPriority = 100
	benchOutPort  = 1
	benchCookie   = 0x0fac000000000000
)

// text renders the flow for ovs-ofctl add-flows.
func (f exactFlow) text() string {
	m := f.mac
	return fmt.Sprintf("cookie=%#x,table=%d,priority=%d,ip,dl_dst=%02x:%02x:%02x:%02x:%02x:%02x,nw_dst=%d.%d.%d.%d,actions=output:%d",
		benchCookie, benchTable, benchPriority, m[0], m[1], m[2], m[3], m[4], m[5],
		f.ip[0], f.ip[1], f.ip[2], f.ip[3], benchOutPort)
}

// ofctlBundleInstall writes n flows to a file and times
// `ovs-ofctl -O OpenFlow13 --bundle add-flows` (file writing excluded).
func ofctlBundleInstall(b *testing.B, node *testbed.Node, bridge string, n int) time.Duration {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteString(benchFlow(i).text())
		sb.WriteByte('\n')
	}
	path := filepath.Join(b.TempDir(), "flows.txt")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	node.Ofctl(b, "--bundle", "add-flows", bridge, path)
	return time.Since(start)
}

// countFlows asks OVS (the independent observer) how many flows the bridge has.
func countFlows(b *testing.B, node *testbed.Node, bridge string) int {
	b.Helper()
	count, err := node.FlowCount(bridge)
	if err != nil {
		b.Fatal(err)
	}
	return count
}
