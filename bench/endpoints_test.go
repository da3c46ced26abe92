package bench

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// Feeding endpoints. ovs-vsctl and pkg/ovsdb were measured and set aside:
//   - one ovs-vsctl with 1000 "add-port" clauses took 2.5 s on an empty
//     bridge, 7.8 s with 1000 ports present, and hit a 10 s timeout at 2000
//     (ovs-vsctl itself spent ~5.5 s of CPU): its cost grows with the ports
//     already there;
//   - pkg/ovsdb.Client.AddPort refuses type=dummy (only "" and "internal")
//     and reads every row per call.
//
// So endpoints are inserted with ovsdb-client transact, one RFC 7047
// transaction per txChunk ports (Interface + Port rows, one Bridge mutate).
//
// Port types. ovs-vswitchd adds type=dummy ports to the userspace datapath,
// and that grows quadratically: 2000 dummy ports took ~12 s until all had an
// ofport, 4000 ~32 s, 6000 ~90 s. Patch ports get a real ofport without a
// datapath port: 10,000 take ~8 s. The bulk endpoints are therefore patch
// ports, paired (d2k <-> d2k+1, both on br-int) so that every peer exists: a
// patch port whose peer is missing gets its "error" column rewritten on every
// reconfiguration, 10,000 rows each time. The endpoints whose addition is
// measured are type=dummy datapath ports, as the brief asks.
const txChunk = 300 // ports per transaction: the JSON is one argv string (< 128 KiB)

// addEndpoints creates endpoints [from, to) (from and to even) as paired
// patch ports on br-int and waits until ovs-vswitchd gave each an ofport.
func (e *agentBed) addEndpoints(b *testing.B, from, to int) { e.addPorts(b, from, to, true) }

// addPorts creates ports [from, to) as addEndpoints does; unless labelled,
// without the external_ids that make them endpoints.
func (e *agentBed) addPorts(b *testing.B, from, to int, labelled bool) {
	b.Helper()
	if from%2 != 0 || to%2 != 0 {
		b.Fatalf("addPorts(%d, %d): patch pairs need even bounds", from, to)
	}
	for lo := from; lo < to; lo += txChunk {
		e.transact(b, addPortsTxn(lo, min(lo+txChunk, to), "patch", labelled))
	}
	e.waitOFPorts(b, 2*time.Minute)
}

// addDummy creates endpoint i as one type=dummy port, in one transaction.
func (e *agentBed) addDummy(b *testing.B, i int) {
	b.Helper()
	e.transact(b, addPortsTxn(i, i+1, "dummy", true))
}

// labelPort makes the existing port of endpoint i an endpoint: one
// transaction adds its external_ids.
func (e *agentBed) labelPort(b *testing.B, i int) {
	b.Helper()
	e.transact(b, fmt.Sprintf(`["Open_vSwitch",{"op":"mutate","table":"Interface","where":[["name","==",%q]],`+
		`"mutations":[["external_ids","insert",%s]]}]`, portName(i), endpointIDs(i)))
}

// endpointIDs is the OVSDB map of endpoint i's external_ids.
func endpointIDs(i int) string {
	return fmt.Sprintf(`["map",[[%q,%q],[%q,%q]]]`, endpoint.KeyNetwork, benchNet, endpoint.KeyIP, endpointIP(i, 0))
}

// transact runs one OVSDB transaction (JSON, RFC 7047) with ovsdb-client.
func (e *agentBed) transact(b *testing.B, txn string) string {
	b.Helper()
	out, err := exec.Command("ovsdb-client", "transact", e.node.DBAddr(), txn).CombinedOutput()
	if err != nil || strings.Contains(string(out), `"error"`) {
		b.Fatalf("ovsdb-client transact: %v: %.500s", err, out)
	}
	return string(out)
}

// waitOFPorts waits until no Interface lacks an ofport.
func (e *agentBed) waitOFPorts(b *testing.B, timeout time.Duration) {
	b.Helper()
	const txn = `["Open_vSwitch",{"op":"select","table":"Interface","where":[["ofport","==",["set",[]]]],"columns":["name"]}]`
	start := time.Now()
	for {
		out := e.transact(b, txn)
		if !strings.Contains(out, `"name"`) {
			return
		}
		if time.Since(start) > timeout {
			b.Fatalf("after %v %d interfaces still have no ofport", timeout, strings.Count(out, `"name"`))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addPortsTxn inserts endpoints [from, to) as Interface and Port rows of the
// given type ("patch": peer d(i^1)), with the endpoint's external_ids if
// labelled, and adds the ports to br-int.
func addPortsTxn(from, to int, typ string, labelled bool) string {
	var sb strings.Builder
	sb.WriteString(`["Open_vSwitch"`)
	var ports []string
	for i := from; i < to; i++ {
		options := `["map",[]]`
		if typ == "patch" {
			options = fmt.Sprintf(`["map",[["peer",%q]]]`, portName(i^1))
		}
		ids := `["map",[]]`
		if labelled {
			ids = endpointIDs(i)
		}
		fmt.Fprintf(&sb, `,{"op":"insert","table":"Interface","uuid-name":"i%d","row":{"name":%q,"type":%q,"options":%s,`+
			`"external_ids":%s}}`, i, portName(i), typ, options, ids)
		fmt.Fprintf(&sb, `,{"op":"insert","table":"Port","uuid-name":"p%d","row":{"name":%q,"interfaces":["named-uuid","i%d"]}}`,
			i, portName(i), i)
		ports = append(ports, fmt.Sprintf(`["named-uuid","p%d"]`, i))
	}
	fmt.Fprintf(&sb, `,{"op":"mutate","table":"Bridge","where":[["name","==",%q]],"mutations":[["ports","insert",["set",[%s]]]]}]`,
		agentBridge, strings.Join(ports, ","))
	return sb.String()
}
