package ovsdb

import (
	"github.com/ovn-org/libovsdb/model"
)

// The models hold only the columns this package reads or writes; libovsdb
// checks each tag and Go type against the server's schema on connect.

const (
	dbName        = "Open_vSwitch"
	tableOVS      = "Open_vSwitch"
	tableBridge   = "Bridge"
	tablePort     = "Port"
	tableIface    = "Interface"
	tableFlowTab  = "Flow_Table"
	failSecure    = "secure"
	protoOF13     = "OpenFlow13"
	keyHWAddr     = "hwaddr"
	keyInBand     = "disable-in-band"
	keyRestore    = "flow-restore-wait"
	ifaceInternal = "internal"
	ifaceGRE      = "gre"
)

// ovsRow is the root Open_vSwitch row.
type ovsRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Bridges     []string          `ovsdb:"bridges"`
	OtherConfig map[string]string `ovsdb:"other_config"`
}

type bridgeRow struct {
	UUID         string            `ovsdb:"_uuid"`
	Name         string            `ovsdb:"name"`
	Ports        []string          `ovsdb:"ports"`
	FailMode     *string           `ovsdb:"fail_mode"`
	Protocols    []string          `ovsdb:"protocols"`
	DatapathType string            `ovsdb:"datapath_type"`
	OtherConfig  map[string]string `ovsdb:"other_config"`
	FlowTables   map[int]string    `ovsdb:"flow_tables"` // OpenFlow table ID -> Flow_Table UUID
}

// flowTableRow is a Flow_Table row: the name OpenFlow reports for a table.
type flowTableRow struct {
	UUID string  `ovsdb:"_uuid"`
	Name *string `ovsdb:"name"`
}

type portRow struct {
	UUID       string   `ovsdb:"_uuid"`
	Name       string   `ovsdb:"name"`
	Interfaces []string `ovsdb:"interfaces"`
}

type ifaceRow struct {
	UUID          string            `ovsdb:"_uuid"`
	Name          string            `ovsdb:"name"`
	Type          string            `ovsdb:"type"`
	Options       map[string]string `ovsdb:"options"`
	ExternalIDs   map[string]string `ovsdb:"external_ids"`
	OFPort        *int              `ovsdb:"ofport"`
	OFPortRequest *int              `ovsdb:"ofport_request"`
	MTURequest    *int              `ovsdb:"mtu_request"`
	MACInUse      *string           `ovsdb:"mac_in_use"`
	Error         *string           `ovsdb:"error"`
}

// tableModels maps each table the client uses to its model.
func tableModels() map[string]model.Model {
	return map[string]model.Model{
		tableOVS:     &ovsRow{},
		tableBridge:  &bridgeRow{},
		tablePort:    &portRow{},
		tableIface:   &ifaceRow{},
		tableFlowTab: &flowTableRow{},
	}
}

func newDBModel() (model.ClientDBModel, error) {
	return model.NewClientDBModel(dbName, tableModels())
}
