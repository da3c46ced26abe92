package etcd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

const tp = "/t"

var tk = keys{tp}

// op is one etcd event: a put (value != nil) or a delete, at revision rev
// for a key created at create.
type op struct {
	key    string
	value  string
	create int64
}

func putNet(name string, vni uint32, subnet string, create int64) op {
	return op{tk.network(name), fmt.Sprintf(`{"version":1,"vni":%d,"subnet":%q}`, vni, subnet), create}
}

func putHost(name, ip string, create int64) op {
	return op{tk.host(name), fmt.Sprintf(`{"version":1,"tunnel_ip":%q}`, ip), create}
}

func putEP(network, ip, host, mac string, create int64) op {
	return op{tk.endpoint(network, netip.MustParseAddr(ip), host), fmt.Sprintf(`{"version":1,"mac":%q}`, mac), create}
}

func del(key string) op { return op{key: key} }

// reports collects what the index reported.
type reports []string

func (r *reports) add(kind string, err error) { *r = append(*r, kind+": "+err.Error()) }

func (r reports) count(kind string) int {
	n := 0
	for _, s := range r {
		if strings.HasPrefix(s, kind+": ") {
			n++
		}
	}
	return n
}

func apply(x *index, ops ...op) bool {
	for _, o := range ops {
		if o.value == "" {
			x.del(o.key)
		} else {
			x.put(o.key, []byte(o.value), o.create)
		}
	}
	return x.resolve()
}

// eps renders the view's endpoints as "network ip mac host".
func eps(v cluster.View) []string {
	var out []string
	for _, e := range v.EndpointList() {
		out = append(out, fmt.Sprintf("%s %s %s %s", e.Network, e.IP, e.MAC, e.Host))
	}
	return out
}

func base() []op {
	return []op{putNet("blue", 100, "10.100.0.0/16", 1), putNet("red", 200, "10.200.0.0/16", 2),
		putHost("ha", "192.0.2.1", 3), putHost("hb", "192.0.2.2", 4), putHost("hc", "192.0.2.3", 5)}
}

func TestIndexConflicts(t *testing.T) {
	const m1, m2, m3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
	tests := []struct {
		name      string
		ops       []op
		want      []string
		conflicts int
	}{
		{"one endpoint", []op{putEP("blue", "10.100.0.1", "ha", m1, 10)},
			[]string{"blue 10.100.0.1 " + m1 + " ha"}, 0},
		{"same IP: oldest create revision wins", []op{putEP("blue", "10.100.0.1", "hb", m2, 11), putEP("blue", "10.100.0.1", "ha", m1, 12)},
			[]string{"blue 10.100.0.1 " + m2 + " hb"}, 1},
		{"same IP, same revision: lower host name wins", []op{putEP("blue", "10.100.0.1", "hb", m2, 11), putEP("blue", "10.100.0.1", "ha", m1, 11)},
			[]string{"blue 10.100.0.1 " + m1 + " ha"}, 1},
		{"same IP in two networks: no conflict", []op{putEP("blue", "10.100.0.1", "ha", m1, 10), putEP("red", "10.200.0.1", "hb", m1, 11)},
			[]string{"blue 10.100.0.1 " + m1 + " ha", "red 10.200.0.1 " + m1 + " hb"}, 0},
		{"same MAC in a network: oldest wins", []op{putEP("blue", "10.100.0.2", "hb", m1, 12), putEP("blue", "10.100.0.1", "ha", m1, 13)},
			[]string{"blue 10.100.0.2 " + m1 + " hb"}, 1},
		{"same MAC, same revision: lower host then IP", []op{putEP("blue", "10.100.0.2", "ha", m1, 12), putEP("blue", "10.100.0.1", "ha", m1, 12)},
			[]string{"blue 10.100.0.1 " + m1 + " ha"}, 1},
		{"claim of an unknown host waits", []op{putEP("blue", "10.100.0.1", "hz", m1, 10), putEP("blue", "10.100.0.1", "hb", m2, 11)},
			[]string{"blue 10.100.0.1 " + m2 + " hb"}, 0},
		{"endpoint moves: the old claim is deleted", []op{putEP("blue", "10.100.0.1", "ha", m1, 10),
			del(tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha")), putEP("blue", "10.100.0.1", "hc", m3, 14)},
			[]string{"blue 10.100.0.1 " + m3 + " hc"}, 0},
		{"any MAC works, MAC change followed", []op{putEP("blue", "10.100.0.1", "ha", m1, 10), putEP("blue", "10.100.0.1", "ha", m3, 10)},
			[]string{"blue 10.100.0.1 " + m3 + " ha"}, 0},
		{"host vanishes: its endpoints go, the loser takes over", []op{putEP("blue", "10.100.0.1", "ha", m1, 10),
			putEP("blue", "10.100.0.1", "hb", m2, 11), del(tk.host("ha"))},
			[]string{"blue 10.100.0.1 " + m2 + " hb"}, 1},
		{"loser MAC holder released", []op{putEP("blue", "10.100.0.2", "hb", m1, 12), putEP("blue", "10.100.0.1", "ha", m1, 13),
			del(tk.endpoint("blue", netip.MustParseAddr("10.100.0.2"), "hb"))},
			[]string{"blue 10.100.0.1 " + m1 + " ha"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r reports
			x := newIndex(tk, nil, r.add)
			apply(x, base()...)
			for _, o := range tc.ops { // one event per batch, as a slow watch would deliver them
				apply(x, o)
			}
			v := x.view(1)
			if got := eps(v); !slices.Equal(got, tc.want) {
				t.Errorf("endpoints:\n got %q\nwant %q", got, tc.want)
			}
			if err := cluster.Validate(v); err != nil {
				t.Errorf("view invalid: %v", err)
			}
			if got := r.count(KindConflict); got != tc.conflicts {
				t.Errorf("conflicts reported %d, want %d: %q", got, tc.conflicts, r)
			}
			// The same records in one batch give the same view: the
			// winner does not depend on the order events arrive in.
			y := newIndex(tk, nil, nil)
			apply(y, append(base(), tc.ops...)...)
			if got := eps(y.view(1)); !slices.Equal(got, tc.want) {
				t.Errorf("one batch gave %q", got)
			}
		})
	}
}

func TestIndexBadRecords(t *testing.T) {
	tests := []struct {
		name string
		op   op
		kind string
	}{
		{"not JSON", op{tk.host("hx"), "{", 9}, KindRecord},
		{"unknown version", op{tk.host("hx"), `{"version":2,"tunnel_ip":"192.0.2.9"}`, 9}, KindRecord},
		{"bad tunnel IP", putHost("hx", "fe80::1", 9), KindRecord},
		{"bad host name", putHost("-x", "192.0.2.9", 9), KindRecord},
		{"bad VNI", putNet("green", 0, "10.0.0.0/8", 9), KindRecord},
		{"subnet host bits", putNet("green", 7, "10.0.0.1/8", 9), KindRecord},
		{"bad MAC", putEP("blue", "10.100.0.1", "ha", "01:00:00:00:00:01", 9), KindRecord},
		{"zero MAC", putEP("blue", "10.100.0.1", "ha", "00:00:00:00:00:00", 9), KindRecord},
		{"bad endpoint key", op{tp + "/hosts/ha/endpoints/blue", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"claim key too short", op{tp + "/claims/blue/ha", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"claim key too long", op{tp + "/claims/blue/ha/10.100.0.1/x", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"claim IP not dotted quad", op{tp + "/claims/blue/ha/10.100.0.01", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"claim without host", op{tp + "/claims/blue//10.100.0.1", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"endpoint key too long", op{tp + "/hosts/ha/endpoints/blue/10.100.0.1/x", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"bad host record key", op{tp + "/hosts/ha/record/x", `{"version":1,"tunnel_ip":"192.0.2.9"}`, 9}, KindRecord},
		{"endpoint IP not dotted quad", op{tp + "/hosts/ha/endpoints/blue/10.100.000.1", `{"version":1,"mac":"02:00:00:00:00:01"}`, 9}, KindRecord},
		{"unknown network", putEP("green", "10.100.0.1", "ha", "02:00:00:00:00:01", 9), KindEndpoint},
		{"outside subnet", putEP("blue", "10.99.0.1", "ha", "02:00:00:00:00:01", 9), KindEndpoint},
		{"VNI taken", putNet("green", 100, "10.0.0.0/8", 9), KindConflict},
		{"tunnel IP taken", putHost("hx", "192.0.2.1", 9), KindConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r reports
			x := newIndex(tk, nil, r.add)
			apply(x, base()...)
			before := x.view(1)
			apply(x, tc.op)
			if len(r) != 1 || r.count(tc.kind) != 1 {
				t.Fatalf("reports %q, want one of kind %s", r, tc.kind)
			}
			apply(x, tc.op) // the same problem again is not reported again
			if len(r) != 1 {
				t.Errorf("reported twice: %q", r)
			}
			if after := x.view(1); !after.Equal(before) {
				t.Errorf("view changed by a rejected record:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestIndexStaticNetworksWin(t *testing.T) {
	var r reports
	static := []cluster.Network{{Name: "blue", VNI: 7, Subnet: netip.MustParsePrefix("10.7.0.0/16")}}
	x := newIndex(tk, static, r.add)
	apply(x, base()...) // etcd's blue (VNI 100) loses to the file's
	v := x.view(1)
	if n, _ := v.Network("blue"); n.VNI != 7 || len(v.Networks) != 2 {
		t.Errorf("networks %+v", v.Networks)
	}
	if r.count(KindConflict) != 1 {
		t.Errorf("reports %q", r)
	}
}

func TestIndexNoChangeNoView(t *testing.T) {
	x := newIndex(tk, nil, nil)
	apply(x, base()...)
	apply(x, putEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 10))
	if apply(x, putEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 10)) {
		t.Error("re-putting the same record changed the view")
	}
	if apply(x, putHost("ha", "192.0.2.1", 3)) {
		t.Error("re-putting the same host changed the view")
	}
	if !apply(x, putHost("ha", "192.0.2.11", 3)) {
		t.Error("a new tunnel IP did not change the view")
	}
}

// TestIndexIncrementalMatchesFresh applies random events one batch at a
// time and checks, after each, that the view equals the one an index built
// from the same records at once gives, and that it is valid.
func TestIndexIncrementalMatchesFresh(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[string]op{}
	x := newIndex(tk, nil, nil)
	rev := int64(10)
	for _, o := range base() {
		live[o.key] = o
	}
	apply(x, base()...)
	hosts := []string{"ha", "hb", "hc", "hd"}
	for step := range 400 {
		var batch []op
		for range 1 + rng.IntN(4) {
			rev++
			var o op
			switch r := rng.IntN(20); {
			case r == 0:
				h := hosts[rng.IntN(len(hosts))]
				if _, ok := live[tk.host(h)]; ok {
					o = del(tk.host(h))
				} else {
					o = putHost(h, fmt.Sprintf("192.0.2.%d", 1+rng.IntN(5)), rev)
				}
			case r == 1:
				o = putNet("red", 200, []string{"10.200.0.0/16", "10.200.0.0/24"}[rng.IntN(2)], 2)
			default:
				ip := fmt.Sprintf("10.200.0.%d", rng.IntN(12))
				if rng.IntN(3) == 0 {
					ip = fmt.Sprintf("10.200.1.%d", rng.IntN(3))
				}
				o = putEP("red", ip, hosts[rng.IntN(len(hosts))], fmt.Sprintf("02:00:00:00:00:%02x", 1+rng.IntN(8)), rev)
				if old, ok := live[o.key]; ok {
					o.create = old.create
					if rng.IntN(2) == 0 {
						o = del(o.key)
					}
				}
			}
			if o.value == "" {
				delete(live, o.key)
			} else {
				if old, ok := live[o.key]; ok {
					o.create = old.create
				}
				live[o.key] = o
			}
			batch = append(batch, o)
		}
		before := x.view(1)
		apply(x, batch...)
		d, diff := x.delta, cluster.Diff(before, x.view(2))
		if d.From = before.Revision; !reflect.DeepEqual(d, diff) {
			t.Fatalf("step %d: the index's delta differs from Diff:\n got %#v\nwant %#v", step, d, diff)
		}
		fresh := newIndex(tk, nil, nil)
		for _, o := range live {
			fresh.put(o.key, []byte(o.value), o.create)
		}
		fresh.resolve()
		got, want := x.view(1), fresh.view(1)
		if !got.Equal(want) {
			t.Fatalf("step %d: incremental view differs:\n got %q\nwant %q", step, eps(got), eps(want))
		}
		if err := cluster.Validate(got); err != nil {
			t.Fatalf("step %d: invalid view: %v", step, err)
		}
	}
}

// TestNetworkRecordNAT: a network record's nat is optional (true); false
// turns outbound NAT off as the file's nat: false does.
func TestNetworkRecordNAT(t *testing.T) {
	for value, noNAT := range map[string]bool{
		`{"version":1,"vni":100,"subnet":"10.100.0.0/16"}`:             false,
		`{"version":1,"vni":100,"subnet":"10.100.0.0/16","nat":true}`:  false,
		`{"version":1,"vni":100,"subnet":"10.100.0.0/16","nat":false}`: true,
	} {
		n, err := parseNetwork("k", "blue", []byte(value))
		if err != nil || n.NoNAT != noNAT {
			t.Errorf("%s: %+v, %v; want NoNAT %v", value, n, err, noNAT)
		}
	}
	if _, err := parseNetwork("k", "blue", []byte(`{"version":1,"vni":100,"subnet":"10.100.0.0/16","nat":"off"}`)); err == nil {
		t.Error(`"nat":"off" accepted`)
	}
}

func TestRecordErrorsAreTyped(t *testing.T) {
	var re *RecordError
	_, _, err := parseHost("k", "h", []byte("nope"))
	if !errors.As(err, &re) || re.Key != "k" {
		t.Errorf("parseHost error %v is not a *RecordError for k", err)
	}
	if got := string(EncodeEndpoint(net.HardwareAddr{2, 0, 0, 0, 0, 1})); got != `{"version":1,"mac":"02:00:00:00:00:01"}` {
		t.Errorf("EncodeEndpoint = %s", got)
	}
	if got := EndpointKey("/p/", "blue", netip.MustParseAddr("10.0.0.1"), "h"); got != "/p/claims/blue/h/10.0.0.1" {
		t.Errorf("EndpointKey = %s", got)
	}
}

// TestEndpointFastPath: records in EncodeEndpoint's exact form skip
// encoding/json; every record reads the same either way.
func TestEndpointFastPath(t *testing.T) {
	slow := func(value []byte) ([6]byte, string, error) { // the decoding without the fast path
		var r EndpointRecord
		if err := decode("k", value, &r, func() int { return r.Version }); err != nil {
			return [6]byte{}, "", err
		}
		m, err := net.ParseMAC(r.MAC)
		if err != nil || len(m) != 6 || m[0]&1 != 0 || [6]byte(m) == [6]byte{} {
			return [6]byte{}, "", &RecordError{Key: "k", Reason: fmt.Sprintf("mac %q is not a unicast 48-bit MAC", r.MAC)}
		}
		return [6]byte(m), r.Name, nil
	}
	for _, tc := range []struct {
		value string
		fast  bool
	}{
		{`{"version":1,"mac":"02:00:00:0a:bc:ff"}`, true},
		{`{"version":1,"mac":"03:00:00:00:00:01"}`, true},  // multicast: refused
		{`{"version":1,"mac":"00:00:00:00:00:00"}`, true},  // zero: refused
		{`{"version":1,"mac":"02:00:00:0A:BC:FF"}`, false}, // upper case
		{`{"version":1,"mac":"02-00-00-0a-bc-ff"}`, false},
		{`{"version":1,"mac":"02:00:00:0a:bc:fg"}`, false},
		{`{"version":2,"mac":"02:00:00:0a:bc:ff"}`, false},
		{`{"mac":"02:00:00:0a:bc:ff","version":1}`, false},
		{`{"version":1, "mac":"02:00:00:0a:bc:ff"}`, false},
		{`{"version":1,"mac":"02:00:00:0a:bc:ff","name":"web"}`, false},
		{`{"version":1,"mac":"02:00:00:0a:bc:f"}`, false},
		{`{"version":1,"mac":"02:00:00:0a:bc:ff"} `, false},
		{`{"version":1,"mac":"02:00:00:0a:bc:ff"`, false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			if _, fast := endpointFast([]byte(tc.value)); fast != tc.fast {
				t.Errorf("fast path %v, want %v", fast, tc.fast)
			}
			mac, name, err := parseEndpoint("k", []byte(tc.value))
			wmac, wname, werr := slow([]byte(tc.value))
			if mac != wmac || name != wname || fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Errorf("parseEndpoint = %x %q %v, encoding/json gives %x %q %v", mac, name, err, wmac, wname, werr)
			}
		})
	}
}

func putHostLayoutEP(network, ip, host, mac string, create int64) op {
	return op{tk.hostEndpoint(network, netip.MustParseAddr(ip), host), fmt.Sprintf(`{"version":1,"mac":%q}`, mac), create}
}

// TestHostLayoutClaims: claims of the previous version's host layout are
// read like the claims layout's; a host's claim in the claims layout wins
// over its own host-layout claim for the same IP, and deleting the
// host-layout key (the upgraded agent's clean-up) leaves it in force.
func TestHostLayoutClaims(t *testing.T) {
	x := newIndex(tk, nil, nil)
	steps := []struct {
		name string
		ops  []op
		want []string
	}{
		{"old agent's claim", []op{putHostLayoutEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 10)},
			[]string{"blue 10.100.0.1 02:00:00:00:00:01 ha"}},
		{"the upgraded agent's new claim", []op{putEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:0a", 11)},
			[]string{"blue 10.100.0.1 02:00:00:00:00:0a ha"}},
		{"the old key rewritten does not replace it", []op{putHostLayoutEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 10)},
			[]string{"blue 10.100.0.1 02:00:00:00:00:0a ha"}},
		{"the old key deleted", []op{del(tk.hostEndpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"))},
			[]string{"blue 10.100.0.1 02:00:00:00:00:0a ha"}},
		{"another old agent's claim beside it", []op{putHostLayoutEP("red", "10.200.0.2", "hb", "02:00:00:00:00:02", 12)},
			[]string{"blue 10.100.0.1 02:00:00:00:00:0a ha", "red 10.200.0.2 02:00:00:00:00:02 hb"}},
		{"the new key deleted", []op{del(tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"))},
			[]string{"red 10.200.0.2 02:00:00:00:00:02 hb"}},
		{"the old agent's claim deleted", []op{del(tk.hostEndpoint("red", netip.MustParseAddr("10.200.0.2"), "hb"))}, nil},
	}
	apply(x, base()...)
	for _, st := range steps {
		apply(x, st.ops...)
		if got := eps(x.view(1)); !slices.Equal(got, st.want) {
			t.Errorf("%s: view %q, want %q", st.name, got, st.want)
		}
	}
	if _, _, c, _ := x.counts(); c != 0 {
		t.Errorf("%d claims left", c)
	}
}
