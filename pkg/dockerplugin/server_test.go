package dockerplugin

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	netID = "e737ec207d4e6b3bbc6a47b08f75cd737c4b6eb20b9d2f54028ebf8bec8fe4b9"
	epID  = "baf5ac0226b156ddb7469e2e247ddeeee9b3bd7beb7e2e466ad26c997afbe692"
)

// TestHandshake: the calls dockerd sends with an empty body and no
// Content-Type, and what the plugin says about itself.
func TestHandshake(t *testing.T) {
	b := newBed(t, "")
	cases := []struct{ call, want string }{
		{"Plugin.Activate", `{"Implements":["NetworkDriver","IpamDriver"]}`},
		{"NetworkDriver.GetCapabilities", `{"Scope":"local","ConnectivityScope":"global"}`},
		{"IpamDriver.GetCapabilities", `{"RequiresMACAddress":false,"RequiresRequestReplay":false}`},
		{"IpamDriver.GetDefaultAddressSpaces", `{"LocalDefaultAddressSpace":"ofctl-agent","GlobalDefaultAddressSpace":"ofctl-agent"}`},
	}
	for _, c := range cases {
		if got := b.ok(t, c.call, ""); got != c.want {
			t.Errorf("%s: %s, want %s", c.call, got, c.want)
		}
	}
}

// TestLifecycle drives the sequence dockerd 20.10 sends for
// `docker network create --ipam-opt network=blue`, `docker run -p
// 8080:80`, the container's end and `docker network rm` (bodies as
// captured, ids shortened where it does not matter).
func TestLifecycle(t *testing.T) {
	b := newBed(t, "")
	pool := b.ok(t, "IpamDriver.RequestPool", `{"AddressSpace":"ofctl-agent","Pool":"","SubPool":"","Options":{"network":"blue"},"V6":false}`)
	if pool != `{"PoolID":"blue/10.1.0.0/16","Pool":"10.1.0.0/16","Data":{}}` {
		t.Fatalf("RequestPool: %s", pool)
	}
	if gw := b.ok(t, "IpamDriver.RequestAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`); gw != `{"Address":"10.1.0.1/16","Data":null}` {
		t.Fatalf("gateway: %s", gw)
	}
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}],"IPv6Data":[]}`)
	if n := b.srv.Networks(); len(n) != 1 || n[0].Name != "blue" || n[0].Gateway.String() != "10.1.0.1" {
		t.Fatalf("bindings: %+v", n)
	}
	if a := b.ok(t, "IpamDriver.RequestAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"","Options":null}`); a != `{"Address":"10.1.0.2/16","Data":null}` {
		t.Fatalf("RequestAddress: %s", a)
	}
	ports := `{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}`
	ce := b.ok(t, "NetworkDriver.CreateEndpoint", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Interface":{"Address":"10.1.0.2/16","AddressIPv6":"","MacAddress":""},"Options":`+ports+`}`)
	if ce != `{"Interface":{"MacAddress":"0a:58:0a:01:00:02"}}` {
		t.Fatalf("CreateEndpoint: %s (want the derived MAC)", ce)
	}
	j := b.ok(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/var/run/docker/netns/44e2ccddf62c","Options":`+ports+`}`)
	if j != `{"InterfaceName":{"SrcName":"vdbaf5ac","DstPrefix":"eth"},"Gateway":"10.1.0.1","DisableGatewayService":true}` {
		t.Fatalf("Join: %s", j)
	}
	b.ok(t, "NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Options":`+ports+`}`)
	info := b.ok(t, "NetworkDriver.EndpointOperInfo", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`"}`)
	if !strings.Contains(info, `"ofctl-agent.ip":"10.1.0.2"`) {
		t.Fatalf("EndpointOperInfo: %s", info)
	}
	for _, c := range []string{"RevokeExternalConnectivity", "Leave", "DeleteEndpoint"} {
		b.ok(t, "NetworkDriver."+c, `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`"}`)
	}
	b.ok(t, "IpamDriver.ReleaseAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"10.1.0.2"}`)
	b.ok(t, "IpamDriver.ReleaseAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"10.1.0.1"}`) // the gateway: kept
	b.ok(t, "IpamDriver.ReleasePool", `{"PoolID":"blue/10.1.0.0/16"}`)
	b.ok(t, "NetworkDriver.DeleteNetwork", `{"NetworkID":"`+netID+`"}`)

	wantEps := "join " + epID + " blue 10.1.0.2/16 0a:58:0a:01:00:02; publish " + epID + " [8080:80/tcp]; unpublish " + epID + "; leave " + epID + "; leave " + epID
	if got := b.eps.calls(); got != wantEps {
		t.Errorf("endpoint backend calls:\n got %s\nwant %s", got, wantEps)
	}
	if got := strings.Join(b.addrs.log, "; "); got != "reserve blue 10.1.0.2; own blue 10.1.0.2 "+epID+"; release blue 10.1.0.2" {
		t.Errorf("address backend calls: %s", got)
	}
	if n := b.srv.Networks(); len(n) != 0 {
		t.Errorf("bindings left: %+v", n)
	}
	if got := testutil.ToFloat64(b.srv.Metrics().requests.WithLabelValues("NetworkDriver.Join", "ok")); got != 1 {
		t.Errorf("requests_total{Join,ok} = %v", got)
	}
}

// TestNetworkBinding: how docker network create binds to the cluster view,
// and the messages users get.
func TestNetworkBinding(t *testing.T) {
	cases := []struct {
		name     string
		poolReq  string // RequestPool body ("" to skip it)
		create   string // CreateNetwork's generic options and pool
		wantNet  string // bound network; "" when refused
		wantErr  string
		errAtIPA bool // refused by RequestPool (else by CreateNetwork)
	}{
		{name: "ipam-opt names it", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"blue"}}`, create: `{}|10.1.0.0/16`, wantNet: "blue"},
		{name: "-o and --ipam-opt", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"red"}}`, create: `{"network":"red"}|10.3.0.0/24`, wantNet: "red"},
		{name: "shared subnet resolved by the pool handover", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"green"}}`, create: `{}|10.3.0.0/24`, wantNet: "green"},
		{name: "--subnet alone, unique", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16","Options":{}}`, create: `{}|10.1.0.0/16`, wantNet: "blue"},
		{name: "unknown name", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"purple"}}`, errAtIPA: true,
			wantErr: `network "purple" is not in the cluster view (networks: blue 10.1.0.0/16, green 10.3.0.0/24, red 10.3.0.0/24)`},
		{name: "-o only: IPAM cannot tell", poolReq: `{"AddressSpace":"ofctl-agent","Options":{}}`, errAtIPA: true,
			wantErr: "which network of the cluster view? give --ipam-opt network=NAME"},
		{name: "subnet mismatch", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.9.0.0/24","Options":{"network":"blue"}}`, errAtIPA: true,
			wantErr: `subnet 10.9.0.0/24 does not match network "blue" of the cluster view (10.1.0.0/16)`},
		{name: "ambiguous subnet", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.3.0.0/24","Options":{}}`, errAtIPA: true,
			wantErr: "subnet 10.3.0.0/24 belongs to networks green, red of the cluster view: choose one with --ipam-opt network=NAME"},
		{name: "unknown subnet", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.7.0.0/24","Options":{}}`, errAtIPA: true,
			wantErr: "no network of the cluster view has subnet 10.7.0.0/24"},
		{name: "unknown ipam option", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"netwrok":"blue"}}`, errAtIPA: true,
			wantErr: "unknown option --ipam-opt netwrok=blue"},
		{name: "ip range", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16","SubPool":"10.1.1.0/24","Options":{}}`, errAtIPA: true,
			wantErr: "--ip-range 10.1.1.0/24 is not supported"},
		{name: "ipv6", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"fd00::/64","V6":true}`, errAtIPA: true, wantErr: "IPv4 only"},
		{name: "host bits", poolReq: `{"AddressSpace":"ofctl-agent","Pool":"10.1.0.5/16"}`, errAtIPA: true, wantErr: "has host bits set"},
		{name: "unknown -o option", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"blue"}}`, create: `{"network":"blue","mtu":"1400"}|10.1.0.0/16`,
			wantErr: "unknown option -o mtu=1400 (ofctl-agent knows -o network=NAME)"},
		{name: "-o names another network than the pool's", poolReq: `{"AddressSpace":"ofctl-agent","Options":{"network":"blue"}}`, create: `{"network":"green"}|10.1.0.0/16`,
			wantErr: `subnet 10.1.0.0/16 does not match network "green"`},
		{name: "no IPAM handover, subnet shared", create: `{}|10.3.0.0/24`, wantErr: "choose one with -o network=NAME"},
		{name: "no IPAM handover, -o names it", create: `{"network":"red"}|10.3.0.0/24`, wantNet: "red"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBed(t, "")
			if c.poolReq != "" {
				if c.errAtIPA {
					b.refused(t, "IpamDriver.RequestPool", c.poolReq, http.StatusBadRequest, c.wantErr)
					if len(b.invalids) != 1 {
						t.Fatalf("OnInvalid calls: %v", b.invalids)
					}
					return
				}
				b.ok(t, "IpamDriver.RequestPool", c.poolReq)
			}
			generic, pool, _ := strings.Cut(c.create, "|")
			body := `{"NetworkID":"` + netID + `","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":` + generic + `},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"","Pool":"` + pool + `"}],"IPv6Data":[]}`
			if c.wantErr != "" {
				b.refused(t, "NetworkDriver.CreateNetwork", body, http.StatusBadRequest, c.wantErr)
				return
			}
			b.ok(t, "NetworkDriver.CreateNetwork", body)
			if n := b.srv.Networks(); len(n) != 1 || n[0].Name != c.wantNet {
				t.Fatalf("bound %+v, want %s", n, c.wantNet)
			}
		})
	}
}

// TestCreateNetworkRefusals: what a network of this driver cannot be.
func TestCreateNetworkRefusals(t *testing.T) {
	mk := func(opts, v4, v6 string) string {
		return `{"NetworkID":"` + netID + `","Options":` + opts + `,"IPv4Data":` + v4 + `,"IPv6Data":` + v6 + `}`
	}
	blue := `{"com.docker.network.generic":{"network":"blue"}}`
	pool := `[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}]`
	cases := []struct{ name, body, want string }{
		{"default IPAM", mk(blue, `[{"AddressSpace":"LocalDefault","Pool":"10.1.0.0/16"}]`, `[]`), "add --ipam-driver ofctl-agent"},
		{"ipv6", mk(`{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"network":"blue"}}`, pool, `[]`), "IPv4 only"},
		{"two pools", mk(blue, `[{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16"},{"AddressSpace":"ofctl-agent","Pool":"10.3.0.0/24"}]`, `[]`), "Docker sent 2"},
		{"gateway outside", mk(blue, `[{"AddressSpace":"ofctl-agent","Gateway":"10.2.0.1/16","Pool":"10.1.0.0/16"}]`, `[]`), "gateway \"10.2.0.1/16\" is not an address of 10.1.0.0/16"},
		{"no id", `{"Options":` + blue + `,"IPv4Data":` + pool + `}`, "NetworkID missing"},
		{"odd id", `{"NetworkID":"../x","Options":` + blue + `,"IPv4Data":` + pool + `}`, "unexpected character"},
		{"generic not a map", mk(`{"com.docker.network.generic":"network=blue"}`, pool, `[]`), "option com.docker.network.generic"},
		{"empty name", mk(`{"com.docker.network.generic":{"network":""}}`, pool, `[]`), "-o network= is empty"},
		{"swarm allocate", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBed(t, "")
			if c.name == "swarm allocate" {
				b.refused(t, "NetworkDriver.AllocateNetwork", mk(blue, pool, `[]`), http.StatusBadRequest, "swarm mode is not supported")
				return
			}
			b.refused(t, "NetworkDriver.CreateNetwork", c.body, http.StatusBadRequest, c.want)
			if n := b.srv.Networks(); len(n) != 0 {
				t.Fatalf("refused network bound: %+v", n)
			}
		})
	}
}

// bound returns a bed with blue bound to netID.
func bound(t *testing.T) *bed {
	t.Helper()
	b := newBed(t, "")
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.generic":{"network":"blue"}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}]}`)
	return b
}

func createEndpoint(itf, opts string) string {
	return `{"NetworkID":"` + netID + `","EndpointID":"` + epID + `","Interface":` + itf + `,"Options":` + opts + `}`
}

// TestCreateEndpoint: addresses, MACs and published ports as Docker
// gives them.
func TestCreateEndpoint(t *testing.T) {
	mac := `{"com.docker.network.endpoint.macaddress":"ClgKAQAF"}` // 0a:58:0a:01:00:05, base64 as dockerd writes it
	cases := []struct {
		name, itf, opts string
		want            string // response, or the error when status is not 200
		status          int
	}{
		{"derived MAC", `{"Address":"10.1.0.7/16"}`, `{}`, `{"Interface":{"MacAddress":"0a:58:0a:01:00:07"}}`, 200},
		{"--mac-address", `{"Address":"10.1.0.5/16","MacAddress":"0a:58:0a:01:00:05"}`, mac, `{}`, 200},
		{"MAC differs from option", `{"Address":"10.1.0.5/16","MacAddress":"0a:58:0a:01:00:06"}`, mac, "in the options differ", 400},
		{"multicast MAC", `{"Address":"10.1.0.5/16","MacAddress":"01:00:5e:00:00:01"}`, `{}`, "not a unicast Ethernet address", 400},
		{"no address", `{"Address":""}`, `{}`, "endpoint without an IPv4 address", 400},
		{"no interface", `null`, `{}`, "endpoint without an IPv4 address", 400},
		{"address outside", `{"Address":"10.2.0.7/16"}`, `{}`, `endpoint address "10.2.0.7/16" is not an address of network blue`, 400},
		{"wrong length", `{"Address":"10.1.0.7/24"}`, `{}`, "is not an address of network blue", 400},
		{"ipv6", `{"Address":"10.1.0.7/16","AddressIPv6":"fd00::7/64"}`, `{}`, "IPv4 only", 400},
		{"-p 80 (no host port)", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":0}]}`, "give a host port", 400},
		{"port range", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":[{"Proto":17,"Port":53,"HostPort":5300,"HostPortEnd":5310}]}`, "host port ranges are not supported", 400},
		{"twice the same host port", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":81,"HostPort":8080,"HostPortEnd":8080}]}`, "host port 8080/tcp is published twice", 400},
		{"unknown protocol", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":[{"Proto":1,"Port":80,"HostPort":8080}]}`, "unknown IP protocol 1", 400},
		{"host IP v6", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostIP":"::","HostPort":8080}]}`, "is not IPv4", 400},
		{"portmap not a list", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.portmap":{"Proto":6}}`, "option com.docker.network.portmap", 400},
		{"newer Docker option", `{"Address":"10.1.0.7/16"}`, `{"com.docker.network.endpoint.dnsnames":["web"]}`, `{"Interface":{"MacAddress":"0a:58:0a:01:00:07"}}`, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bound(t)
			body := createEndpoint(c.itf, c.opts)
			if c.status != 200 {
				b.refused(t, "NetworkDriver.CreateEndpoint", body, c.status, c.want)
				return
			}
			if got := b.ok(t, "NetworkDriver.CreateEndpoint", body); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestUnknownObjects(t *testing.T) {
	b := newBed(t, "")
	ids := `{"NetworkID":"` + netID + `","EndpointID":"` + epID + `"}`
	b.refused(t, "NetworkDriver.CreateEndpoint", createEndpoint(`{"Address":"10.1.0.7/16"}`, `{}`), http.StatusBadRequest, "unknown network "+netID)
	b = bound(t)
	b.refused(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/x"}`, http.StatusBadRequest, "unknown endpoint "+epID)
	// Deletes and inspection of what the plugin does not know succeed
	// (after an agent restart Docker must still be able to clean up).
	b.ok(t, "NetworkDriver.DeleteEndpoint", ids)
	if got := b.ok(t, "NetworkDriver.EndpointOperInfo", ids); got != `{"Value":{}}` {
		t.Fatalf("EndpointOperInfo of an unknown endpoint: %s", got)
	}
	b.ok(t, "NetworkDriver.DeleteNetwork", `{"NetworkID":"0123"}`)
	m := b.srv.Metrics().requests
	if got := testutil.ToFloat64(m.WithLabelValues("NetworkDriver.DeleteNetwork", "ignored")); got != 1 {
		t.Errorf("requests_total{DeleteNetwork,ignored} = %v", got)
	}
	if got := testutil.ToFloat64(m.WithLabelValues("NetworkDriver.Join", "invalid")); got != 1 {
		t.Errorf("requests_total{Join,invalid} = %v", got)
	}
	if got := b.eps.calls(); got != "leave "+epID {
		t.Errorf("backend calls: %s (DeleteEndpoint must still ask the backend to clean up)", got)
	}
}

// TestMalformed: bad bodies get a Docker-format error, a 400, a metric
// and the OnInvalid hook; unknown calls a 404.
func TestMalformed(t *testing.T) {
	bodies := []struct{ body, want string }{
		{"", "empty request body"},
		{"   ", "empty request body"},
		{"{", "malformed JSON"},
		{"null", "null instead of an object"},
		{"[]", "malformed JSON"},
		{`{"NetworkID":1,"PoolID":1,"AddressSpace":2,"DiscoveryType":"x"}`, "malformed JSON"},
		{`{"NetworkID":"a"} {}`, "data after the object"},
		{`"x"`, "malformed JSON"},
	}
	calls := []string{"NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork", "NetworkDriver.CreateEndpoint",
		"NetworkDriver.Join", "NetworkDriver.Leave", "IpamDriver.RequestPool", "IpamDriver.RequestAddress",
		"IpamDriver.ReleaseAddress", "NetworkDriver.DiscoverNew", "NetworkDriver.ProgramExternalConnectivity"}
	b := newBed(t, "")
	for _, call := range calls {
		for _, c := range bodies {
			b.refused(t, call, c.body, http.StatusBadRequest, c.want)
		}
	}
	if len(b.invalids) != len(calls)*len(bodies) {
		t.Errorf("OnInvalid called %d times, want %d", len(b.invalids), len(calls)*len(bodies))
	}
	if got := testutil.ToFloat64(b.srv.Metrics().requests.WithLabelValues("IpamDriver.RequestPool", "invalid")); got != float64(len(bodies)) {
		t.Errorf("requests_total{RequestPool,invalid} = %v", got)
	}
	b.refused(t, "NetworkDriver.Frobnicate", "{}", http.StatusNotFound, `unknown call "NetworkDriver.Frobnicate"`)
	b.refused(t, "IpamDriver.RequestPool", strings.Repeat(" ", maxBody+1)+"{}", http.StatusBadRequest, "reading the request")
	req := `{"PoolID":"blue/10.1.0.0/16"}`
	b.refused(t, "IpamDriver.ReleasePool", `{"PoolID":"blue"}`, http.StatusBadRequest, "is not one of ofctl-agent's")
	b.ok(t, "IpamDriver.ReleasePool", req)
}

// TestAddresses: --ip, --gateway and the allocator's refusals.
func TestAddresses(t *testing.T) {
	b := newBed(t, "")
	req := func(addr, opts string) string {
		return `{"PoolID":"blue/10.1.0.0/16","Address":"` + addr + `","Options":` + opts + `}`
	}
	if got := b.ok(t, "IpamDriver.RequestAddress", req("10.1.0.9", "null")); got != `{"Address":"10.1.0.9/16","Data":null}` {
		t.Fatalf("--ip: %s", got)
	}
	b.refused(t, "IpamDriver.RequestAddress", req("10.1.0.9", "null"), http.StatusBadRequest, "network blue: 10.1.0.9: address not available")
	b.refused(t, "IpamDriver.RequestAddress", req("10.2.0.9", "null"), http.StatusBadRequest, `address "10.2.0.9" is not an address of network blue`)
	b.refused(t, "IpamDriver.RequestAddress", req("10.1.0.9", `{"RequestAddressType":"com.docker.network.gateway"}`), http.StatusBadRequest,
		"--gateway 10.1.0.9: this host's gateway in network blue is 10.1.0.1")
	b.refused(t, "IpamDriver.RequestAddress", `{"PoolID":"purple/10.1.0.0/16","Options":null}`, http.StatusBadRequest, `network "purple" is no longer in the cluster view`)
	b.refused(t, "IpamDriver.RequestAddress", `{"PoolID":"blue/10.9.0.0/16","Options":null}`, http.StatusBadRequest, `network "blue" is now 10.1.0.0/16 in the cluster view`)
	b.addrs.limit = 1
	b.ok(t, "IpamDriver.RequestAddress", req("", "null"))
	b.refused(t, "IpamDriver.RequestAddress", req("", "null"), http.StatusBadRequest, "no free address")
	b.refused(t, "IpamDriver.ReleaseAddress", `{"PoolID":"blue/10.1.0.0/16","Address":"x"}`, http.StatusBadRequest, `address "x"`)
}

// TestJoinTimeout: a backend that does not see the endpoint installed in
// time makes Join fail with a clear error instead of hanging dockerd.
func TestJoinTimeout(t *testing.T) {
	b := bound(t)
	b.srv.cfg.JoinTimeout = 50 * time.Millisecond
	b.eps.joinFn = func(ctx context.Context, ep Endpoint) (Joined, error) {
		<-ctx.Done()
		return Joined{}, ctx.Err()
	}
	b.ok(t, "NetworkDriver.CreateEndpoint", createEndpoint(`{"Address":"10.1.0.7/16"}`, `{}`))
	start := time.Now()
	b.refused(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/x"}`, http.StatusInternalServerError, "not installed within 50ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Join took %v", d)
	}
	b.eps.joinFn = func(ctx context.Context, ep Endpoint) (Joined, error) { return Joined{}, errors.New("ovsdb down") }
	b.refused(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/x"}`, http.StatusInternalServerError, "ovsdb down")
	if got := testutil.ToFloat64(b.srv.Metrics().requests.WithLabelValues("NetworkDriver.Join", "error")); got != 2 {
		t.Errorf("requests_total{Join,error} = %v", got)
	}
}

// TestInternalNetwork: --internal gets no gateway (and never
// docker_gwbridge).
func TestInternalNetwork(t *testing.T) {
	b := newBed(t, "")
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.generic":{"network":"blue"},"com.docker.network.internal":true},"IPv4Data":[{"AddressSpace":"ofctl-agent","Pool":"10.1.0.0/16"}]}`)
	b.ok(t, "NetworkDriver.CreateEndpoint", createEndpoint(`{"Address":"10.1.0.7/16"}`, `{}`))
	j := b.ok(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/x"}`)
	if j != `{"InterfaceName":{"SrcName":"vdbaf5ac","DstPrefix":"eth"},"DisableGatewayService":true}` {
		t.Fatalf("Join on an internal network: %s", j)
	}
}

// TestStatePersists: bindings survive a new server (an agent restart),
// atomically written; a damaged file stops New with a clear error.
func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "docker-networks.json")
	b := newBed(t, path)
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.generic":{"network":"blue"}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}]}`)
	again := newBed(t, path)
	if n := again.srv.Networks(); len(n) != 1 || n[0].Name != "blue" || n[0].ID != netID {
		t.Fatalf("after restart: %+v", n)
	}
	again.ok(t, "NetworkDriver.CreateEndpoint", createEndpoint(`{"Address":"10.1.0.7/16"}`, `{}`))
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d files (temporary files left?)", len(entries))
	}
	again.ok(t, "NetworkDriver.DeleteNetwork", `{"NetworkID":"`+netID+`"}`)
	if n := newBed(t, path).srv.Networks(); len(n) != 0 {
		t.Fatalf("deleted binding came back: %+v", n)
	}
	if err := os.WriteFile(path, []byte(`{"networks":[{"id":"x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{StateFile: path, View: testBedView, Addresses: newFakeAddresses(), Endpoints: &fakeEndpoints{}})
	if err == nil || !strings.Contains(err.Error(), "someone edited it") {
		t.Fatalf("damaged state file: %v", err)
	}
}

// TestJoinWithoutGateway: while the host has no gateway in the network,
// Join names none (no default route) and still disables docker_gwbridge.
func TestJoinWithoutGateway(t *testing.T) {
	b := newBed(t, "")
	b.addrs.gateways["blue"] = netip.Addr{}
	b.ok(t, "IpamDriver.RequestPool", `{"AddressSpace":"ofctl-agent","Pool":"","SubPool":"","Options":{"network":"blue"},"V6":false}`)
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}],"IPv6Data":[]}`)
	b.ok(t, "NetworkDriver.CreateEndpoint", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Interface":{"Address":"10.1.0.2/16"}}`)
	j := b.ok(t, "NetworkDriver.Join", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","SandboxKey":"/var/run/docker/netns/44e2ccddf62c"}`)
	if j != `{"InterfaceName":{"SrcName":"vdbaf5ac","DstPrefix":"eth"},"DisableGatewayService":true}` {
		t.Fatalf("Join: %s", j)
	}
}

// TestPublishedPortsRefused: ports the contract cannot carry (sctp, a
// host address) are refused at CreateEndpoint, before anything is made.
func TestPublishedPortsRefused(t *testing.T) {
	b := newBed(t, "")
	b.ok(t, "IpamDriver.RequestPool", `{"AddressSpace":"ofctl-agent","Pool":"","SubPool":"","Options":{"network":"blue"},"V6":false}`)
	b.ok(t, "NetworkDriver.CreateNetwork", `{"NetworkID":"`+netID+`","Options":{"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"ofctl-agent","Gateway":"10.1.0.1/16","Pool":"10.1.0.0/16"}],"IPv6Data":[]}`)
	for _, c := range []struct{ pm, want string }{
		{`{"Proto":132,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}`, "only tcp and udp"},
		{`{"Proto":6,"IP":"","Port":80,"HostIP":"192.0.2.1","HostPort":8080,"HostPortEnd":8080}`, "a host address cannot be given"},
	} {
		b.refused(t, "NetworkDriver.CreateEndpoint", `{"NetworkID":"`+netID+`","EndpointID":"`+epID+`","Interface":{"Address":"10.1.0.2/16"},"Options":{"com.docker.network.portmap":[`+c.pm+`]}}`,
			http.StatusBadRequest, c.want)
	}
	if got := b.eps.calls(); got != "" {
		t.Fatalf("backend called: %s", got)
	}
}
