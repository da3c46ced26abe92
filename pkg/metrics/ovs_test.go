package metrics

import (
	"bufio"
	"bytes"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

var (
	fixedCookie = pipeline.FixedCookie()
	vc1Cookie   = pipeline.Endpoint{Port: "vc1"}.Cookie()
)

func testPorts() []fakePort {
	return []fakePort{
		{no: openflow13.P_LOCAL, name: "br-int", c: [12]uint64{1, 2, 3, 4}},
		{no: 1, name: "vc1", c: [12]uint64{10, 20, 1000, 2000, 1, 2, 3, 4}},
		{no: 2, name: "vc2", c: [12]uint64{30, 40, 3000, 4000}},
		{no: 100, name: "gre0", c: [12]uint64{5, 6, 500, 600, 0, 0, math.MaxUint64, 0}}, // rx_errors unavailable
	}
}

func testFlows() []fakeFlow {
	return []fakeFlow{
		{table: pipeline.Classifier.ID(), cookie: fixedCookie, packets: 1000},            // classifier miss: goto, not a drop
		{table: pipeline.SpoofGuard.ID(), cookie: fixedCookie, packets: 3, drop: true},   // spoof_guard miss
		{table: pipeline.ARPResponder.ID(), cookie: fixedCookie, packets: 4, drop: true}, // arp_responder miss
		{table: pipeline.TunnelIngress.ID(), cookie: fixedCookie, drop: true},            // tunnel_ingress miss
		{table: pipeline.TunnelNetwork.ID(), cookie: fixedCookie, drop: true},            // tunnel_network miss
		{table: pipeline.L2Forward.ID(), cookie: fixedCookie, packets: 5, drop: true},    // l2_forward miss
		{table: pipeline.TunnelEgress.ID(), cookie: fixedCookie, packets: 8},             // tunnel_egress miss: output
		{table: pipeline.SpoofGuard.ID(), priority: 200, cookie: vc1Cookie, inPort: 1, packets: 50},
		{table: pipeline.SpoofGuard.ID(), priority: 100, cookie: spoofDrop(vc1Cookie), inPort: 1, packets: 7, drop: true},
		{table: pipeline.SpoofGuard.ID(), priority: 100, cookie: 0x1234, inPort: 2, packets: 99, drop: true},    // foreign
		{table: pipeline.SpoofGuard.ID(), priority: 100, cookie: vc1Cookie, inPort: 2, packets: 98, drop: true}, // no drop role
		// a second endpoint's drop flow on ofport 1 (a stale owner): summed
		{table: pipeline.SpoofGuard.ID(), priority: 100, cookie: spoofDrop(pipeline.Endpoint{Port: "old"}.Cookie()), inPort: 1, packets: 1, drop: true},
		{table: pipeline.L2Forward.ID(), priority: 200, cookie: vc1Cookie, packets: 60},
	}
}

// spoofDrop is the cookie of an endpoint's spoof_guard drop flow.
func spoofDrop(endpoint uint64) uint64 { return pipeline.WithRole(endpoint, pipeline.RoleSpoofDrop) }

func testLabels() map[string]PortLabels {
	return map[string]PortLabels{"vc1": {Network: "blue", IP: "10.100.1.10", Container: "c1"}, "vc2": {Container: "c2"}}
}

// newTestOVS connects an OVS reader to a fake switch; every scrape reads
// the switch (no cache: cache_test.go tests it).
func newTestOVS(t *testing.T, f *fakeOVS, timeout time.Duration) (*OVS, *openflow.Conn, *sw.Session) {
	c, ss := f.dial(t)
	o := NewOVS(OVSConfig{Switch: func() Switch { return c }, Ports: testLabels, Timeout: timeout, MaxAge: -1, Logger: quiet})
	t.Cleanup(o.Close)
	return o, c, ss
}

// key formats a sample as name{label="value",...} with sorted labels.
func key(name string, kv ...string) string {
	var pairs []string
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+`="`+kv[i+1]+`"`)
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// parse parses the text format strictly (a malformed exposition fails).
func parse(t testing.TB, text string) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%.2000s", err, text)
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	return mfs
}

// flatten maps key -> value (histograms: their sample count).
func flatten(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName(), l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[key(mf.GetName(), kv...)] = v
		}
	}
	return out
}

// ovsText is one scrape of o in the text format.
func ovsText(t *testing.T, o *OVS) string {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if err := o.Scrape().WriteText(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// samples is one scrape of o, parsed.
func samples(t *testing.T, o *OVS) map[string]float64 { return flatten(parse(t, ovsText(t, o))) }

// count is the number of samples of family name.
func count(s map[string]float64, name string) int {
	n := 0
	for k := range s {
		if strings.HasPrefix(k, name+"{") {
			n++
		}
	}
	return n
}

func port(name, ofport, network, ip, container string) []string {
	return []string{"port", name, "ofport", ofport, "network", network, "ip", ip, "container", container, "role", ""}
}

func TestOVSCollector(t *testing.T) {
	c, _, _ := newTestOVS(t, newFakeOVS(t, testPorts(), testFlows()), time.Second)
	got := samples(t, c)
	vc1, vc2 := port("vc1", "1", "blue", "10.100.1.10", "c1"), port("vc2", "2", "", "", "c2")
	local, gre := port("br-int", "LOCAL", "", "", ""), port("gre0", "100", "", "", "")
	want := map[string]float64{
		key(ns+"_port_receive_packets_total", vc1...): 10, key(ns+"_port_transmit_packets_total", vc1...): 20,
		key(ns+"_port_receive_bytes_total", vc1...): 1000, key(ns+"_port_transmit_bytes_total", vc1...): 2000,
		key(ns+"_port_receive_drops_total", vc1...): 1, key(ns+"_port_transmit_drops_total", vc1...): 2,
		key(ns+"_port_receive_errors_total", vc1...): 3, key(ns+"_port_transmit_errors_total", vc1...): 4,
		key(ns+"_port_receive_packets_total", vc2...): 30, key(ns+"_port_transmit_bytes_total", vc2...): 4000,
		key(ns+"_port_receive_packets_total", local...): 1, key(ns+"_port_receive_packets_total", gre...): 5,
		key(ns+"_spoof_drops_packets_total", vc1...):  8,
		key(ns+"_table_flows", "table", "classifier"): 1, key(ns+"_table_flows", "table", "spoof_guard"): 6,
		key(ns+"_table_flows", "table", "l2_forward"): 2, key(ns+"_table_flows", "table", "tunnel_egress"): 1,
		key(ns+"_table_miss_drops_packets_total", "table", "spoof_guard"):    3,
		key(ns+"_table_miss_drops_packets_total", "table", "arp_responder"):  4,
		key(ns+"_table_miss_drops_packets_total", "table", "tunnel_ingress"): 0,
		key(ns+"_table_miss_drops_packets_total", "table", "l2_forward"):     5,
		key(ns+"_scrape_collector_success", "collector", "ports"):            1,
		key(ns+"_scrape_collector_success", "collector", "tables"):           1,
		key(ns+"_scrape_collector_success", "collector", "spoof_guard"):      1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	absent := []string{
		key(ns+"_port_receive_errors_total", gre...),                     // all ones: unavailable
		key(ns+"_spoof_drops_packets_total", vc2...),                     // a foreign flow, a flow without the role
		key(ns+"_table_miss_drops_packets_total", "table", "classifier"), // miss goes on
		key(ns+"_table_miss_drops_packets_total", "table", "tunnel_egress"),
	}
	for _, k := range absent {
		if _, ok := got[k]; ok {
			t.Errorf("%s exported, want absent", k)
		}
	}
	if n := count(got, ns+"_port_receive_packets_total"); n != 4 {
		t.Errorf("%d ports exported, want 4", n)
	}
	if n := count(got, ns+"_spoof_drops_packets_total"); n != 1 {
		t.Errorf("%d spoof drop series, want 1", n)
	}
}

func TestOVSCollectorFailures(t *testing.T) {
	tests := []struct {
		name        string
		stall, fail []uint16
		noSwitch    bool
		success     map[string]float64
		ports       int // port_receive_packets_total series
	}{
		{name: "no connection", noSwitch: true, success: map[string]float64{"ports": 0, "tables": 0, "spoof_guard": 0}},
		{name: "port stats time out", stall: []uint16{openflow13.MultipartType_Port},
			success: map[string]float64{"ports": 0, "tables": 1, "spoof_guard": 1}},
		{name: "flow stats refused", fail: []uint16{openflow13.MultipartType_Flow},
			success: map[string]float64{"ports": 1, "tables": 0, "spoof_guard": 0}, ports: 4},
		{name: "flow stats time out", stall: []uint16{openflow13.MultipartType_Flow},
			success: map[string]float64{"ports": 1, "tables": 0, "spoof_guard": 0}, ports: 4},
		{name: "table stats refused", fail: []uint16{openflow13.MultipartType_Table},
			success: map[string]float64{"ports": 1, "tables": 0, "spoof_guard": 1}, ports: 4},
		{name: "port desc refused", fail: []uint16{openflow13.MultipartType_PortDesc},
			success: map[string]float64{"ports": 0, "tables": 1, "spoof_guard": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOVS(t, testPorts(), testFlows())
			for _, m := range tt.stall {
				f.stall[m] = true
			}
			for _, m := range tt.fail {
				f.fail[m] = true
			}
			c, _, _ := newTestOVS(t, f, 200*time.Millisecond)
			if tt.noSwitch {
				c.cfg.Switch = func() Switch { return nil }
			}
			start := time.Now()
			got := samples(t, c)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("scrape took %v with a 200ms collector timeout", took)
			}
			for coll, v := range tt.success {
				if g := got[key(ns+"_scrape_collector_success", "collector", coll)]; g != v {
					t.Errorf("success{collector=%s} = %v, want %v", coll, g, v)
				}
				if _, ok := got[key(ns+"_scrape_collector_duration_seconds", "collector", coll)]; !ok {
					t.Errorf("no duration for collector %s", coll)
				}
			}
			if n := count(got, ns+"_port_receive_packets_total"); n != tt.ports {
				t.Errorf("%d port series, want %d", n, tt.ports)
			}
		})
	}
}

func TestPortNameCache(t *testing.T) {
	f := newFakeOVS(t, testPorts(), testFlows())
	c, _, ss := newTestOVS(t, f, time.Second)
	for range 3 {
		samples(t, c)
	}
	if n := f.descCount(); n != 1 {
		t.Fatalf("3 scrapes read the port description %d times, want 1 (cached)", n)
	}
	// A new port missing from the cache makes it re-read.
	f.mu.Lock()
	f.ports = append(f.ports, fakePort{no: 3, name: "vc3", c: [12]uint64{77}})
	f.mu.Unlock()
	if got := samples(t, c)[key(ns+"_port_receive_packets_total", port("vc3", "3", "", "", "")...)]; got != 77 {
		t.Errorf("new port vc3: receive packets %v, want 77", got)
	}
	if n := f.descCount(); n != 2 {
		t.Errorf("port description read %d times after a new port, want 2", n)
	}
	// A port-status event (ofport 2 now named vc2b) updates the cache
	// without another read.
	f.mu.Lock()
	f.ports[2].name = "vc2b"
	f.mu.Unlock()
	if err := ss.Send(sw.PortStatus(openflow13.PR_MODIFY, sw.Port{No: 2, Name: "vc2b"})); err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got = samples(t, c); got[key(ns+"_port_receive_packets_total", port("vc2b", "2", "", "", "")...)] == 30 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := got[key(ns+"_port_receive_packets_total", port("vc2b", "2", "", "", "")...)]; !ok {
		t.Error("the port-status event did not rename ofport 2")
	}
	if n := f.descCount(); n != 2 {
		t.Errorf("port description read %d times after an event, want still 2", n)
	}
	// A new connection starts a new cache.
	c2, _ := f.dial(t)
	c.cfg.Switch = func() Switch { return c2 }
	samples(t, c)
	if n := f.descCount(); n != 3 {
		t.Errorf("port description read %d times after a reconnect, want 3", n)
	}
}

func TestMatchInPort(t *testing.T) {
	tests := []struct {
		name string
		m    []byte
		want uint32
		ok   bool
	}{
		{"in_port", inPortMatch(7), 7, true},
		{"empty", []byte{0, 1, 0, 4, 0, 0, 0, 0}, 0, false},
		{"after eth_type", []byte{0, 1, 0, 18, 0x80, 0, 10, 2, 8, 0, 0x80, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0}, 9, true},
		{"masked in_port ignored", []byte{0, 1, 0, 16, 0x80, 0, 1, 8, 0, 0, 0, 1, 0, 0, 0, 1}, 0, false},
		{"short", []byte{0, 1}, 0, false},
		{"length beyond bytes", []byte{0, 1, 0, 40, 0x80, 0, 0, 4, 0, 0, 0, 1}, 0, false},
		{"truncated tlv", []byte{0, 1, 0, 10, 0x80, 0, 0, 4, 0, 0, 0, 0}, 0, false},
		{"length below header", []byte{0, 1, 0, 2, 0, 0, 0, 0}, 0, false},
	}
	for _, tt := range tests {
		got, ok := matchInPort(tt.m)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: matchInPort = %d %v, want %d %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// Endpoint labels follow the agent's view from one scrape to the next
// (the rendered label sets are cached per port).
func TestLabelsFollowEndpoints(t *testing.T) {
	f := newFakeOVS(t, testPorts(), testFlows())
	c, _ := f.dial(t)
	labels := testLabels()
	o := NewOVS(OVSConfig{Switch: func() Switch { return c }, Ports: func() map[string]PortLabels { return maps.Clone(labels) },
		MaxAge: -1, Logger: quiet})
	t.Cleanup(o.Close)
	before := port("vc2", "2", "", "", "c2")
	if _, ok := samples(t, o)[key(ns+"_port_receive_packets_total", before...)]; !ok {
		t.Fatal("vc2 not exported as a plain port")
	}
	labels["vc2"] = PortLabels{Network: "blue", IP: "10.100.1.20", Container: "c2"}
	got := samples(t, o)
	if _, ok := got[key(ns+"_port_receive_packets_total", port("vc2", "2", "blue", "10.100.1.20", "c2")...)]; !ok {
		t.Errorf("vc2's new endpoint labels not exported")
	}
	if _, ok := got[key(ns+"_port_receive_packets_total", before...)]; ok {
		t.Errorf("vc2 still exported with its old labels")
	}
}
