package config

import "testing"

// The example in contrib/ must stay loadable: it documents every key.
func TestContribExampleLoads(t *testing.T) {
	c, err := Load([]string{"-config", "../../contrib/agent.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "host-a" || c.TunnelIP != "192.0.2.1" || c.OpenFlow != "unix:/var/run/openvswitch/br-int.mgmt" {
		t.Fatalf("got %+v", c)
	}
}
