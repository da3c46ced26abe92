package debugapi

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// QueryError is a bad query parameter (HTTP 400).
type QueryError struct {
	Param string
	Msg   string
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Msg }

func badParam(p, format string, a ...any) error {
	return &QueryError{Param: p, Msg: fmt.Sprintf(format, a...)}
}

// checkParams refuses unknown and repeated parameters.
func checkParams(q url.Values, allowed []string) error {
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return badParam(k, "unknown parameter (known: %s)", strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return badParam(k, "given %d times", len(vs))
		}
	}
	return nil
}

// wantJSON reads the format parameter.
func wantJSON(q url.Values) (bool, error) {
	switch f := q.Get("format"); f {
	case "", "text":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, badParam("format", "%q: want text or json", f)
	}
}

// env is what filters resolve names against.
type env struct {
	state pipeline.State
	ifs   []ovsdb.Interface
}

// port resolves an OpenFlow port number or an interface name.
func (e env) port(param, s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n > 0 {
		return uint32(n), nil
	}
	for _, i := range e.ifs {
		if i.Name == s {
			if i.OFPort <= 0 {
				return 0, badParam(param, "interface %s has no OpenFlow port (ofport %d)", s, i.OFPort)
			}
			return uint32(i.OFPort), nil
		}
	}
	return 0, badParam(param, "%q is neither a port number nor an interface on the bridge", s)
}

func (e env) endpointByPort(ofport uint32) (pipeline.Endpoint, bool) {
	for _, ep := range e.state.Endpoints {
		if ep.OFPort == ofport {
			return ep, true
		}
	}
	return pipeline.Endpoint{}, false
}

// flowQuery is a parsed /debug/flows query.
type flowQuery struct {
	json     bool
	table    int // -1: every table
	statuses []string
	preds    []func(item) bool
	filters  map[string]string
}

var flowParams = []string{"table", "endpoint", "port", "network", "status", "format"}

func parseFlowQuery(q url.Values, e env) (flowQuery, error) {
	fq := flowQuery{table: -1, filters: map[string]string{}}
	if err := checkParams(q, flowParams); err != nil {
		return fq, err
	}
	var err error
	if fq.json, err = wantJSON(q); err != nil {
		return fq, err
	}
	for _, p := range flowParams[:5] {
		v, ok := q[p]
		if !ok {
			continue
		}
		if v[0] == "" {
			return fq, badParam(p, "empty value")
		}
		fq.filters[p] = v[0]
		if err := fq.add(p, v[0], e); err != nil {
			return fq, err
		}
	}
	return fq, nil
}

func (fq *flowQuery) add(p, v string, e env) error {
	switch p {
	case "table":
		t, err := parseTable(v)
		fq.table = t
		return err
	case "status":
		for _, s := range strings.Split(v, ",") {
			if !slices.Contains(Statuses, s) {
				return badParam(p, "%q: want %s (comma-separated)", s, strings.Join(Statuses, ", "))
			}
			fq.statuses = append(fq.statuses, s)
		}
	case "port":
		n, err := e.port(p, v)
		if err != nil {
			return err
		}
		fq.preds = append(fq.preds, func(it item) bool { return it.any(func(f flow.Flow) bool { return usesPort(f, n) }) })
	case "endpoint":
		pred, err := endpointPred(v, e)
		if err != nil {
			return err
		}
		fq.preds = append(fq.preds, pred)
	case "network":
		pred, err := networkPred(v, e)
		if err != nil {
			return err
		}
		fq.preds = append(fq.preds, pred)
	}
	return nil
}

func parseTable(v string) (int, error) {
	if n, err := strconv.ParseUint(v, 10, 8); err == nil && n < 255 {
		return int(n), nil
	}
	var names []string
	for _, t := range pipeline.Tables() {
		if t.Name == v {
			return int(t.ID), nil
		}
		names = append(names, t.Name)
	}
	return 0, badParam("table", "%q: want a table number (0-254) or a name: %s", v, strings.Join(names, ", "))
}

// keep applies the query to items.
func (fq flowQuery) keep(it item) bool {
	if fq.table >= 0 && int(it.entry.Table) != fq.table {
		return false
	}
	if len(fq.statuses) > 0 && !slices.Contains(fq.statuses, it.entry.Status) {
		return false
	}
	for _, p := range fq.preds {
		if !p(it) {
			return false
		}
	}
	return true
}

// any reports whether pred holds for OVS's or the desired flow.
func (it item) any(pred func(flow.Flow) bool) bool { return slices.ContainsFunc(it.flows, pred) }

// usesPort: the flow matches in_port=n or outputs to n.
func usesPort(f flow.Flow, n uint32) bool {
	if in, ok := f.Match.Get(flow.FieldInPort); ok && in.Value.U64() == uint64(n) {
		return true
	}
	return slices.ContainsFunc(f.Actions, func(a flow.Action) bool { o, ok := a.(flow.Output); return ok && o.Port == n })
}

// endpointPred selects a local endpoint's flows (by port name or IP), or
// for another IP the flows that match it or its derived MAC.
func endpointPred(v string, e env) (func(item) bool, error) {
	ip, ipErr := netip.ParseAddr(v)
	for _, ep := range e.state.Endpoints {
		if ep.Port == v || ipErr == nil && ep.IP == ip {
			object := ep.Cookie() & pipeline.ObjectMask // every role of its flows
			return func(it item) bool {
				return it.cookie&pipeline.ObjectMask == object || it.any(func(f flow.Flow) bool {
					return usesPort(f, ep.OFPort) || usesMAC(f, ep.MAC) || usesIP(f, ep.IP)
				})
			}, nil
		}
	}
	if ipErr != nil || !ip.Is4() {
		return nil, badParam("endpoint", "%q is not a local endpoint's port name nor an IPv4 address", v)
	}
	mac := arp.DerivedMAC(ip)
	return func(it item) bool {
		return it.any(func(f flow.Flow) bool { return usesIP(f, ip) || usesMAC(f, mac) })
	}, nil
}

// usesMAC: the flow matches mac (masks applied) or writes it.
func usesMAC(f flow.Flow, mac net.HardwareAddr) bool {
	v, ok := flow.MACValue(mac)
	if !ok {
		return false
	}
	macs := []flow.Field{flow.FieldEthSrc, flow.FieldEthDst, flow.FieldArpSha, flow.FieldArpTha}
	for _, fm := range f.Match.Fields() {
		if slices.Contains(macs, fm.Field) && fm.Matches(v) {
			return true
		}
	}
	return slices.ContainsFunc(f.Actions, func(a flow.Action) bool {
		s, ok := a.(flow.SetField)
		return ok && slices.Contains(macs[:3], s.Field) && s.Value == v
	})
}

// usesIP: an IPv4 prefix of the match contains ip.
func usesIP(f flow.Flow, ip netip.Addr) bool {
	v := flow.AddrValue(ip)
	return slices.ContainsFunc(f.Match.Fields(), func(fm flow.FieldMatch) bool {
		return slices.Contains([]flow.Field{flow.FieldIPv4Src, flow.FieldIPv4Dst, flow.FieldArpSpa, flow.FieldArpTpa}, fm.Field) && fm.Matches(v)
	})
}

// networkPred selects the flows of a network: matching or loading its VNI
// in reg0, matching it as tun_id, or owned by it or one of its endpoints.
func networkPred(v string, e env) (func(item) bool, error) {
	var names []string
	for _, n := range e.state.Networks {
		if n.Name != v {
			names = append(names, n.Name)
			continue
		}
		cookies := map[uint64]bool{n.Cookie(): true} // by cookie & ObjectMask: every role
		for _, ep := range e.state.Endpoints {
			if ep.Network == n.Name {
				cookies[ep.Cookie()] = true
			}
		}
		return func(it item) bool {
			return cookies[it.cookie&pipeline.ObjectMask] || it.any(func(f flow.Flow) bool { return usesVNI(f, n.VNI) })
		}, nil
	}
	return nil, badParam("network", "no network %q (known: %s)", v, strings.Join(names, ", "))
}

func usesVNI(f flow.Flow, vni uint32) bool {
	for _, fm := range f.Match.Fields() {
		if (fm.Field == flow.Reg(0) || fm.Field == flow.FieldTunID) && fm == fm.Field.Is(uint64(vni)) {
			return true
		}
	}
	return slices.ContainsFunc(f.Actions, func(a flow.Action) bool {
		s, ok := a.(flow.SetField)
		return ok && s.Field == flow.Reg(0) && s.Value == flow.U64(uint64(vni))
	})
}
