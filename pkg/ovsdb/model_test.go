package ovsdb

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

const schemaFile = "/usr/share/openvswitch/vswitch.ovsschema"

// TestModelsMatchSchema checks the hand-written models against the schema
// Debian installs, the way libovsdb does on connect.
func TestModelsMatchSchema(t *testing.T) {
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("schema needed in CI: %v", err)
		}
		t.Skipf("no OVS schema: %v", err)
	}
	var schema ovsdb.DatabaseSchema
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	m, err := newDBModel()
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := model.NewDatabaseModel(schema, m); len(errs) > 0 {
		t.Fatalf("models do not match %s: %v", schemaFile, errs)
	}
	// And the check does catch a wrong model.
	type badIface struct {
		UUID   string `ovsdb:"_uuid"`
		OFPort int    `ovsdb:"ofport"` // optional column: must be *int
	}
	bad, _ := model.NewClientDBModel(dbName, map[string]model.Model{tableIface: &badIface{}})
	if _, errs := model.NewDatabaseModel(schema, bad); len(errs) == 0 {
		t.Error("a model with ofport as int passed the schema check")
	}
}
