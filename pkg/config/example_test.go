package config

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

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

// Every flag of `run` is documented: in the README's flag table (a
// "`name`" in a row of the table after "| flag / key |") and in the
// contrib example (a "name:" key, set or commented out).
func TestEveryFlagDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "| flag / key |")
	if !ok {
		t.Fatal("README has no flag table (a header starting with \"| flag / key |\")")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	example, err := os.ReadFile("../../contrib/agent.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	newFlagSet(&c, new(string)).VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if !strings.Contains(table, "`"+f.Name+"`") {
			t.Errorf("flag %s is missing from the README's flag table", f.Name)
		}
		if !regexp.MustCompile(`(?m)^#? ?` + regexp.QuoteMeta(f.Name) + `:`).Match(example) {
			t.Errorf("flag %s is missing from contrib/agent.example.yaml", f.Name)
		}
	})
}
