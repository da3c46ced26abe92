package pipeline

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// Packets of the reference topology: blue-a (port 1, 10.1.1.2, derived MAC),
// blue-b (port 2, 10.1.1.3, MAC 02:00:00:00:01:03), red-a (port 3,
// 10.2.1.2); remote host h2 192.0.2.2 (blue 10.1.2.0/24, red 10.2.2.0/24),
// h3 192.0.2.3 (blue 10.1.3.0/25), remote blue endpoint 10.1.4.7 on h3.
const (
	fromBlueA  = "in_port=1,dl_src=0a:58:0a:01:01:02,"
	ipBlueA    = "ip," + fromBlueA + "nw_src=10.1.1.2,"
	arpBlueA   = "arp," + fromBlueA + "arp_spa=10.1.1.2,arp_sha=0a:58:0a:01:01:02,dl_dst=ff:ff:ff:ff:ff:ff,"
	fromH2Blue = "in_port=100,tun_src=192.0.2.2,tun_id=100,ip,dl_src=0a:58:0a:01:02:05,nw_src=10.1.2.5,"
)

var outputRE = regexp.MustCompile(`^(output:\d+|IN_PORT)$`)

// traceResult is what ofproto/trace says happens to a packet at the
// OpenFlow level: the outputs it reaches and the packet's final fields.
type traceResult struct {
	outputs []string
	final   []string
}

func parseTrace(out string) traceResult {
	var r traceResult
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if outputRE.MatchString(l) {
			r.outputs = append(r.outputs, l)
		}
		if f, ok := strings.CutPrefix(l, "Final flow: "); ok {
			r.final = strings.Split(f, ",")
		}
	}
	return r
}

// TestOVSTrace runs packets through the reference pipeline in a real OVS
// (ofproto/trace: the OpenFlow tables, not a model of them) and checks
// forwarding, ARP answers, spoofing, tunneling and isolation.
func TestOVSTrace(t *testing.T) {
	n, _ := installed(t, Reference())
	tests := []traceCase{
		{"local same network", ipBlueA + "dl_dst=02:00:00:00:01:03,nw_dst=10.1.1.3", "output:2", nil},
		{"local other network", ipBlueA + "dl_dst=0a:58:0a:02:01:02,nw_dst=10.2.1.2", "", nil},
		{"spoofed IP", "ip," + fromBlueA + "nw_src=10.1.1.9,dl_dst=02:00:00:00:01:03,nw_dst=10.1.1.3", "", nil},
		{"spoofed MAC", "ip,in_port=1,dl_src=0a:58:0a:01:01:09,nw_src=10.1.1.2,dl_dst=02:00:00:00:01:03", "", nil},
		{"IPv6", "ipv6," + fromBlueA + "dl_dst=02:00:00:00:01:03", "", nil},
		{"broadcast IP", ipBlueA + "dl_dst=ff:ff:ff:ff:ff:ff,nw_dst=10.1.255.255", "", nil},
		{"unknown unicast", ipBlueA + "dl_dst=0a:58:0a:01:09:09,nw_dst=10.1.9.9", "", nil},
		{"ARP for local", arpBlueA + "arp_op=1,arp_tpa=10.1.1.3", "IN_PORT", []string{
			"dl_src=02:00:00:00:01:03", "dl_dst=0a:58:0a:01:01:02", "arp_op=2", "arp_spa=10.1.1.3",
			"arp_tpa=10.1.1.2", "arp_sha=02:00:00:00:01:03", "arp_tha=0a:58:0a:01:01:02"}},
		{"ARP for remote range", arpBlueA + "arp_op=1,arp_tpa=10.1.2.77", "IN_PORT", []string{
			"dl_src=0a:58:0a:01:02:4d", "dl_dst=0a:58:0a:01:01:02", "arp_op=2", "arp_spa=10.1.2.77",
			"arp_tpa=10.1.1.2", "arp_sha=0a:58:0a:01:02:4d", "arp_tha=0a:58:0a:01:01:02"}},
		{"ARP for remote endpoint", arpBlueA + "arp_op=1,arp_tpa=10.1.4.7", "IN_PORT", []string{
			"dl_src=02:00:00:00:04:07", "arp_sha=02:00:00:00:04:07", "arp_spa=10.1.4.7"}},
		{"ARP other network", arpBlueA + "arp_op=1,arp_tpa=10.2.1.2", "", nil},
		{"ARP outside range", arpBlueA + "arp_op=1,arp_tpa=10.1.3.200", "", nil},
		{"ARP reply", arpBlueA + "arp_op=2,arp_tpa=10.1.1.3", "", nil},
		{"ARP spoofed sha", "arp," + fromBlueA + "arp_spa=10.1.1.2,arp_sha=0a:58:0a:01:01:09,arp_op=1,arp_tpa=10.1.1.3", "", nil},
		{"to remote range", ipBlueA + "dl_dst=0a:58:0a:01:02:05,nw_dst=10.1.2.5", "output:100", []string{
			"tun_dst=192.0.2.2", "~NXM_NX_TUN_ID[0..31] is now 0x64"}},
		{"to remote endpoint", ipBlueA + "dl_dst=02:00:00:00:04:07,nw_dst=10.1.4.7", "output:100", []string{
			"tun_dst=192.0.2.3", "~NXM_NX_TUN_ID[0..31] is now 0x64"}},
		{"red to blue range", "ip,in_port=3,dl_src=0a:58:0a:02:01:02,nw_src=10.2.1.2,dl_dst=0a:58:0a:01:02:05", "", nil},
		{"from tunnel", fromH2Blue + "dl_dst=0a:58:0a:01:01:02,nw_dst=10.1.1.2", "output:1", nil},
		{"from tunnel derived MAC", fromH2Blue + "dl_dst=0a:58:0a:01:01:03,nw_dst=10.1.1.3", "output:2", []string{
			"dl_dst=02:00:00:00:01:03"}},
		{"from tunnel other network", "in_port=100,tun_src=192.0.2.2,tun_id=200,ip,dl_dst=0a:58:0a:01:01:02", "", nil},
		{"from unknown host", "in_port=100,tun_src=192.0.2.99,tun_id=100,ip,dl_dst=0a:58:0a:01:01:02", "", nil},
		{"from tunnel unknown VNI", "in_port=100,tun_src=192.0.2.2,tun_id=300,ip,dl_dst=0a:58:0a:01:01:02", "", nil},
		{"from tunnel back out", fromH2Blue + "dl_dst=0a:58:0a:01:03:05,nw_dst=10.1.3.5", "", nil},
		{"ARP from tunnel", "in_port=100,tun_src=192.0.2.2,tun_id=100,arp,arp_op=1,arp_tpa=10.1.1.2", "", nil},
		{"unknown port", "ip,in_port=7,dl_src=0a:58:0a:01:01:02,nw_src=10.1.1.2,dl_dst=02:00:00:00:01:03", "", nil},
	}
	checkTraces(t, n, tests)
}

type traceCase struct {
	name   string
	packet string
	output string   // "" for drop
	final  []string // fields of the packet when it leaves (or, with a "~" prefix, text of the trace)
}

func checkTraces(t *testing.T, n *testbed.Node, tests []traceCase) {
	t.Helper()
	for _, tt := range tests {
		out := n.Appctl(t, "ofproto/trace", "br-int", tt.packet)
		r := parseTrace(out)
		var want []string
		if tt.output != "" {
			want = []string{tt.output}
		}
		if !slices.Equal(r.outputs, want) {
			t.Errorf("%s: outputs %q, want %q\n%s", tt.name, r.outputs, want, out)
			continue
		}
		for _, f := range tt.final {
			// ofproto/trace leaves tun_id out of its final flow: check the step.
			if text, ok := strings.CutPrefix(f, "~"); ok {
				if !strings.Contains(out, text) {
					t.Errorf("%s: trace lacks %q:\n%s", tt.name, text, out)
				}
				continue
			}
			if !slices.Contains(r.final, f) {
				t.Errorf("%s: final packet lacks %s: %q", tt.name, f, r.final)
			}
		}
	}
}

// TestOVSTraceGateway runs packets from and to the gateways of the gateway
// topology (ofgw-blue: port 5, 10.1.1.1, 0a:58:0a:01:01:01) through a real
// OVS: the gateway sends with any source IP but only its MAC, is answered
// and reached from local containers and from the tunnel, and reaches
// local and remote containers of its network only.
func TestOVSTraceGateway(t *testing.T) {
	n, _ := installed(t, withGateways())
	const fromGW = "in_port=5,dl_src=0a:58:0a:01:01:01,"
	checkTraces(t, n, []traceCase{
		{"outside source to a local container", "ip," + fromGW + "nw_src=198.51.100.7,dl_dst=02:00:00:00:01:03,nw_dst=10.1.1.3", "output:2", nil},
		{"host to a remote container", "ip," + fromGW + "nw_src=10.1.1.1,dl_dst=0a:58:0a:01:02:05,nw_dst=10.1.2.5", "output:100", []string{
			"tun_dst=192.0.2.2"}},
		{"gateway to another network", "ip," + fromGW + "nw_src=10.1.1.1,dl_dst=0a:58:0a:02:01:02,nw_dst=10.2.1.2", "", nil},
		{"gateway with another MAC", "ip,in_port=5,dl_src=0a:58:0a:01:01:09,nw_src=10.1.1.1,dl_dst=02:00:00:00:01:03", "", nil},
		{"gateway IPv6", "ipv6," + fromGW + "dl_dst=02:00:00:00:01:03", "", nil},
		{"gateway ARP from another address", "arp," + fromGW + "arp_spa=192.0.2.1,arp_sha=0a:58:0a:01:01:01,arp_op=1,arp_tpa=10.1.1.2", "IN_PORT", []string{
			"dl_src=0a:58:0a:01:01:02", "arp_spa=10.1.1.2", "arp_tpa=192.0.2.1"}},
		{"gateway ARP spoofed sha", "arp," + fromGW + "arp_spa=10.1.1.1,arp_sha=0a:58:0a:01:01:09,arp_op=1,arp_tpa=10.1.1.2", "", nil},
		{"container ARP for its gateway", arpBlueA + "arp_op=1,arp_tpa=10.1.1.1", "IN_PORT", []string{
			"dl_src=0a:58:0a:01:01:01", "arp_sha=0a:58:0a:01:01:01", "arp_spa=10.1.1.1"}},
		{"container to the outside via its gateway", ipBlueA + "dl_dst=0a:58:0a:01:01:01,nw_dst=198.51.100.7", "output:5", nil},
		{"red container to blue's gateway", "ip,in_port=3,dl_src=0a:58:0a:02:01:02,nw_src=10.2.1.2,dl_dst=0a:58:0a:01:01:01,nw_dst=198.51.100.7", "", nil},
		{"remote container to the gateway", fromH2Blue + "dl_dst=0a:58:0a:01:01:01,nw_dst=10.1.1.1", "output:5", nil},
	})
}
