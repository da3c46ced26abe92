package dockerplugin

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// FuzzServe sends one call with any body to a server whose state already
// holds the network and endpoint the body names (so that a mutated body
// goes past the lookups), and checks the answer keeps Docker's contract:
// 200 with a JSON body, or 400/404/500 with a JSON {"Err"} that says
// where it comes from; exactly one call counted. Seeds: the calls a real
// dockerd 20.10 sent in TestDockerRun (testdata/fuzz/FuzzServe, written
// with -update-seeds) and the malformed shapes below.
func FuzzServe(f *testing.F) {
	for _, s := range []struct{ call, body string }{
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"x","Options":{"com.docker.network.generic":{"network":"blue"}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16"}]}`},
		{"NetworkDriver.CreateEndpoint", `{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.1.0.9/16"},"Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080}],"com.docker.network.endpoint.macaddress":"ClgKAQAJ"}}`},
		{"NetworkDriver.Join", `{"NetworkID":"n","EndpointID":"e","SandboxKey":"/x","Options":null}`},
		{"IpamDriver.RequestAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"10.1.0.9","Options":{"RequestAddressType":"com.docker.network.gateway"}}`},
		{"IpamDriver.RequestPool", `{"AddressSpace":"ofctl-agent","Pool":"10.3.0.0/24","Options":{"network":"red"}}`},
		{"NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1","self":true}}`},
		{"NetworkDriver.Join", `{`},
		{"IpamDriver.ReleaseAddress", `null`},
		{"Plugin.Activate", ``},
		{"Nope", `{}`},
	} {
		f.Add(s.call, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, call string, body []byte) {
		b := newBed(t, "")
		prime(b, body)
		before := countRequests(b)
		st, out := b.do(call, string(body))
		switch st {
		case http.StatusOK:
			if !json.Valid([]byte(out)) {
				t.Fatalf("%s: 200 with a body that is not JSON: %q", call, out)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError:
			var e errorResponse
			if err := json.Unmarshal([]byte(out), &e); err != nil || !strings.HasPrefix(e.Err, "ofctl-agent: ") || len(e.Err) == len("ofctl-agent: ") {
				t.Fatalf("%s: status %d with %q: not Docker's error format", call, st, out)
			}
		default:
			t.Fatalf("%s: status %d", call, st)
		}
		if got := countRequests(b) - before; got != 1 {
			t.Fatalf("%s counted %v times", call, got)
		}
	})
}

// prime binds the network id and creates the endpoint id a body names,
// when they are usable ids, so the call under test finds them.
func prime(b *bed, body []byte) {
	var ids struct{ NetworkID, EndpointID string }
	if json.Unmarshal(body, &ids) != nil || checkID("NetworkID", ids.NetworkID) != nil {
		return
	}
	b.do("NetworkDriver.CreateNetwork", `{"NetworkID":"`+ids.NetworkID+`","Options":{"com.docker.network.generic":{"network":"blue"}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16"}]}`)
	if checkID("EndpointID", ids.EndpointID) != nil {
		return
	}
	b.do("NetworkDriver.CreateEndpoint", `{"NetworkID":"`+ids.NetworkID+`","EndpointID":"`+ids.EndpointID+`","Interface":{"Address":"10.1.0.50/16"}}`)
}

func countRequests(b *bed) float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.srv.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		panic(err) // an inconsistent collector is a bug, whatever the input
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "ofctl_agent_docker_plugin_requests_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
