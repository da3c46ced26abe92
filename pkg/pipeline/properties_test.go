package pipeline

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

func networksByName(s State) map[string]Network {
	m := map[string]Network{}
	for _, n := range s.Networks {
		m[n.Name] = n
	}
	return m
}

func TestFlowsPerObject(t *testing.T) {
	s := Reference()
	nets := networksByName(s)
	total := len(FixedFlows(s.TunnelPort))
	// One miss flow per table (tunnel_egress's is the tunnel output when
	// there is a tunnel port), and the classifier's tunnel flow.
	if n, want := len(FixedFlows(100)), len(Tables())+1; n != want {
		t.Errorf("fixed flows with tunnel: %d, want %d", n, want)
	}
	if n, want := len(FixedFlows(0)), len(Tables()); n != want {
		t.Errorf("fixed flows without tunnel: %d, want %d", n, want)
	}
	for _, n := range s.Networks {
		if got := len(NetworkFlows(n)); got != 1 {
			t.Errorf("network %s: %d flows, want 1", n.Name, got)
		}
		total += 1
	}
	for _, e := range s.Endpoints {
		want := 5
		if !arp.IsDerived(e.MAC, e.IP) {
			want = 6
		}
		if got := len(EndpointFlows(nets[e.Network], e)); got != want {
			t.Errorf("endpoint %s: %d flows, want %d", e.Port, got, want)
		}
		total += want
	}
	for _, h := range s.Hosts {
		want := 1 + 2*len(h.Ranges)
		if got := len(RemoteHostFlows(h, s.Networks)); got != want {
			t.Errorf("host %s: %d flows, want %d", h.Name, got, want)
		}
		total += want
	}
	for _, e := range s.RemoteEndpoints {
		if got := len(RemoteEndpointFlows(nets[e.Network], RemoteHost{TunnelIP: addr("192.0.2.9")}, e)); got != 2 {
			t.Errorf("remote endpoint %s: %d flows, want 2", e.IP, got)
		}
		total += 2
	}
	if got := len(Build(s)); got != total {
		t.Errorf("Build: %d flows, want %d", got, total)
	}
}

// permuted returns s with every list reversed.
func permuted(s State) State {
	s.Networks = slices.Clone(s.Networks)
	s.Endpoints = slices.Clone(s.Endpoints)
	s.Hosts = slices.Clone(s.Hosts)
	s.RemoteEndpoints = slices.Clone(s.RemoteEndpoints)
	slices.Reverse(s.Networks)
	slices.Reverse(s.Endpoints)
	slices.Reverse(s.Hosts)
	slices.Reverse(s.RemoteEndpoints)
	return s
}

func TestStableOrder(t *testing.T) {
	for _, tp := range topologies {
		a := flow.Dump(Build(tp.state()))
		if b := flow.Dump(Build(tp.state())); a != b {
			t.Errorf("%s: two builds differ", tp.name)
		}
		if c := flow.Dump(Build(permuted(tp.state()))); a != c {
			t.Errorf("%s: input order changes the flows:\n%s\nvs\n%s", tp.name, a, c)
		}
		var enc [][]byte
		for _, f := range Build(tp.state()) {
			fm, err := f.FlowMod(openflow13.FC_ADD)
			if err != nil {
				t.Fatal(err)
			}
			fm.Xid = 0
			b, _ := fm.MarshalBinary()
			enc = append(enc, b)
		}
		for i, f := range Build(permuted(tp.state())) {
			fm, _ := f.FlowMod(openflow13.FC_ADD)
			fm.Xid = 0
			if b, _ := fm.MarshalBinary(); string(b) != string(enc[i]) {
				t.Errorf("%s: flow %d encodes differently", tp.name, i)
			}
		}
	}
}

// TestCookiesSelectObjects checks that every flow carries the agent magic and
// that cookie/ObjectMask selects exactly the flows of one object.
func TestCookiesSelectObjects(t *testing.T) {
	s := Reference()
	all := Build(s)
	nets := networksByName(s)
	hosts := map[string]RemoteHost{}
	for _, h := range s.Hosts {
		hosts[h.Name] = h
	}
	objects := map[uint64][]flow.Flow{FixedCookie(): FixedFlows(s.TunnelPort)}
	for _, n := range s.Networks {
		objects[n.Cookie()] = NetworkFlows(n)
	}
	for _, e := range s.Endpoints {
		objects[e.Cookie()] = EndpointFlows(nets[e.Network], e)
	}
	for _, h := range s.Hosts {
		objects[h.Cookie()] = RemoteHostFlows(h, s.Networks)
	}
	for _, e := range s.RemoteEndpoints {
		objects[e.Cookie()] = RemoteEndpointFlows(nets[e.Network], hosts[e.Host], e)
	}
	if len(objects) != 1+len(s.Networks)+len(s.Endpoints)+len(s.Hosts)+len(s.RemoteEndpoints) {
		t.Fatal("two objects share a cookie")
	}
	for cookie, want := range objects {
		var got []flow.Flow
		for _, f := range all {
			if f.Cookie&ObjectMask == cookie&ObjectMask {
				got = append(got, f)
			}
		}
		flow.Sort(want)
		if flow.Dump(got) != flow.Dump(want) {
			t.Errorf("cookie %#x selects\n%s\nwant\n%s", cookie, flow.Dump(got), flow.Dump(want))
		}
	}
	for _, f := range all {
		c, _, ok := ParseCookie(f.Cookie)
		if !ok || c < CategoryFixed || c > CategoryRemoteEndpoint || f.Cookie&MagicMask != CookieMagic {
			t.Errorf("flow without a valid agent cookie: %s", f)
		}
	}
	if _, _, ok := ParseCookie(0x1234 << 48); ok {
		t.Error("foreign cookie parsed as ours")
	}
}

// TestIsolation checks that every arp_responder and l2_forward flow (but the
// misses) matches reg0 exactly with the VNI of its own object's network, and
// that reg0 is only ever set to the VNI the packet's port or tun_id proves.
func TestIsolation(t *testing.T) {
	s := Reference()
	vnis := map[uint64][]uint32{} // object cookie -> VNIs its flows may match
	nets := networksByName(s)
	for _, e := range s.Endpoints {
		vnis[e.Cookie()] = []uint32{nets[e.Network].VNI}
	}
	for _, e := range s.RemoteEndpoints {
		vnis[e.Cookie()] = []uint32{nets[e.Network].VNI}
	}
	for _, h := range s.Hosts {
		for name := range h.Ranges {
			vnis[h.Cookie()] = append(vnis[h.Cookie()], nets[name].VNI)
		}
	}
	for _, f := range Build(s) {
		switch tableOf(f.Table) {
		case ARPResponder, L2Forward:
			if f.Priority == priorityMiss {
				continue
			}
			r, _ := f.Match.Get(flow.Reg(int(regNetwork.Reg)))
			if r.Mask != flow.U64(0xffffffff) || !slices.Contains(vnis[f.Cookie], uint32(r.Value.U64())) {
				t.Errorf("flow does not match its own network's VNI exactly: %s", f)
			}
		case SpoofGuard:
			checkLoadsVNI(t, f, vnis[f.Cookie])
		case TunnelNetwork:
			if f.Priority != priorityMiss {
				id, _ := f.Match.Get(flow.FieldTunID)
				checkLoadsVNI(t, f, []uint32{uint32(id.Value.U64())})
			}
		}
	}
}

func checkLoadsVNI(t *testing.T, f flow.Flow, allowed []uint32) {
	t.Helper()
	for _, a := range f.Actions {
		if sf, ok := a.(flow.SetField); ok && sf.Field == flow.Reg(0) && !slices.Contains(allowed, uint32(sf.Value.U64())) {
			t.Errorf("flow sets reg0 to a foreign VNI: %s", f)
		}
	}
}

// TestTunnelRules: ARP never reaches the tunnel; only l2_forward flows that
// require reg1 bit 0 clear go to tunnel_egress; only tunnel_egress outputs to
// the tunnel port.
func TestTunnelRules(t *testing.T) {
	s := Reference()
	for _, f := range Build(s) {
		for _, a := range f.Actions {
			switch a := a.(type) {
			case flow.Output:
				if a.Port == s.TunnelPort && tableOf(f.Table) != TunnelEgress {
					t.Errorf("outputs to the tunnel outside tunnel_egress: %s", f)
				}
				if tableOf(f.Table) == ARPResponder && a.Port != flow.PortInPort {
					t.Errorf("ARP answer not sent back in place: %s", f)
				}
			case flow.GotoTable:
				r, _ := f.Match.Get(flow.Reg(int(regFromTunnel.Reg)))
				if tableOf(a.Table) == TunnelEgress && (uint32(r.Mask.U64())&regFromTunnel.Mask() == 0 || !markFromLocal.Match().Matches(r.Value)) {
					t.Errorf("may send tunneled packets back into the tunnel: %s", f)
				}
				if tableOf(a.Table) == TunnelEgress && f.Match.EthType() == flow.EthTypeARP {
					t.Errorf("ARP towards the tunnel: %s", f)
				}
			}
		}
	}
}

func TestAllFlowsValid(t *testing.T) {
	for _, tp := range topologies {
		for _, f := range Build(tp.state()) {
			if _, err := f.FlowMod(openflow13.FC_ADD); err != nil {
				t.Errorf("%s: %v", tp.name, err)
			}
		}
	}
}

func tableOf(id uint8) Table {
	t, _ := TableByID(id)
	return t
}

// TestTables: the declaration gives unique names, consecutive IDs, docs,
// and miss targets later in the pipeline; every table is in the docs.
func TestTables(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pipeline.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, ti := range Tables() {
		if int(ti.ID) != i || ti.Name == "" || ti.Doc == "" || names[ti.Name] {
			t.Errorf("table %d: %+v", i, ti)
		}
		names[ti.Name] = true
		if tb := Table(ti.Name); tb.ID() != ti.ID || tableOf(ti.ID) != tb || tb.String() != ti.Name {
			t.Errorf("table %s: ID %d, by ID %q", ti.Name, tb.ID(), tableOf(ti.ID))
		}
		if ti.MissTo != "" && ti.MissTo.ID() <= ti.ID {
			t.Errorf("table %s: misses go back to %s", ti.Name, ti.MissTo)
		}
		if !strings.Contains(string(doc), ti.Name) {
			t.Errorf("docs/pipeline.md does not describe table %s", ti.Name)
		}
	}
	if _, ok := TableByID(uint8(len(Tables()))); ok {
		t.Error("a table past the last one")
	}
	defer func() {
		if recover() == nil {
			t.Error("ID of an undeclared table did not panic")
		}
	}()
	Table("nowhere").ID()
}

// TestMissFlows: each table has one priority-0 flow with the fixed cookie,
// doing what its declaration says (tunnel_egress's is the tunnel output
// when there is a tunnel port).
func TestMissFlows(t *testing.T) {
	for _, port := range []uint32{0, 100} {
		miss := map[uint8]flow.Flow{}
		for _, f := range FixedFlows(port) {
			if f.Priority == priorityMiss && f.Match.String() == "" {
				miss[f.Table] = f
			}
		}
		for _, ti := range Tables() {
			f, ok := miss[ti.ID]
			switch {
			case !ok:
				t.Errorf("port %d: table %s has no miss flow", port, ti.Name)
			case ti.MissTo != "" && flow.ActionsString(f.Actions) != fmt.Sprintf("goto_table:%d", ti.MissTo.ID()):
				t.Errorf("port %d: table %s misses to %s", port, ti.Name, f)
			case ti.MissTo == "" && len(f.Actions) != 0 && !(port != 0 && Table(ti.Name) == TunnelEgress):
				t.Errorf("port %d: table %s's miss flow does not drop: %s", port, ti.Name, f)
			}
		}
	}
}

func TestRegisterFields(t *testing.T) {
	for _, r := range []flow.RegField{regNetwork, regFromTunnel, regTunnelDst} {
		for _, o := range []flow.RegField{regNetwork, regFromTunnel, regTunnelDst} {
			if r != o && r.Reg == o.Reg && r.Mask()&o.Mask() != 0 {
				t.Errorf("register fields %v and %v overlap", r, o)
			}
		}
	}
}
