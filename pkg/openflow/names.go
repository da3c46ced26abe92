package openflow

import "fmt"

// Experimenter IDs seen in errors and messages from Open vSwitch.
const (
	onfExperimenter = 0x4f4e4600 // ONF (bundles for OpenFlow 1.3)
	nxExperimenter  = 0x00002320 // Nicira
)

// msgTypeNames are the OpenFlow 1.3 ofp_type names without the OFPT_ prefix.
var msgTypeNames = [...]string{
	"HELLO", "ERROR", "ECHO_REQUEST", "ECHO_REPLY", "EXPERIMENTER",
	"FEATURES_REQUEST", "FEATURES_REPLY", "GET_CONFIG_REQUEST", "GET_CONFIG_REPLY", "SET_CONFIG",
	"PACKET_IN", "FLOW_REMOVED", "PORT_STATUS", "PACKET_OUT", "FLOW_MOD", "GROUP_MOD",
	"PORT_MOD", "TABLE_MOD", "MULTIPART_REQUEST", "MULTIPART_REPLY", "BARRIER_REQUEST",
	"BARRIER_REPLY", "QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY", "ROLE_REQUEST",
	"ROLE_REPLY", "GET_ASYNC_REQUEST", "GET_ASYNC_REPLY", "SET_ASYNC", "METER_MOD",
}

// MsgTypeName names an OpenFlow 1.3 message type, e.g. "OFPT_FLOW_MOD".
func MsgTypeName(t uint8) string {
	if int(t) < len(msgTypeNames) {
		return "OFPT_" + msgTypeNames[t]
	}
	return fmt.Sprintf("OFPT_%d", t)
}

// errTypeNames are the ofp_error_type names of OpenFlow 1.3, indexed by type.
var errTypeNames = [...]string{
	"OFPET_HELLO_FAILED", "OFPET_BAD_REQUEST", "OFPET_BAD_ACTION", "OFPET_BAD_INSTRUCTION",
	"OFPET_BAD_MATCH", "OFPET_FLOW_MOD_FAILED", "OFPET_GROUP_MOD_FAILED", "OFPET_PORT_MOD_FAILED",
	"OFPET_TABLE_MOD_FAILED", "OFPET_QUEUE_OP_FAILED", "OFPET_SWITCH_CONFIG_FAILED",
	"OFPET_ROLE_REQUEST_FAILED", "OFPET_METER_MOD_FAILED", "OFPET_TABLE_FEATURES_FAILED",
}

// errCodeNames holds, per error type, the code names indexed by code.
var errCodeNames = [...][]string{
	{"OFPHFC_INCOMPATIBLE", "OFPHFC_EPERM"},
	{"OFPBRC_BAD_VERSION", "OFPBRC_BAD_TYPE", "OFPBRC_BAD_MULTIPART", "OFPBRC_BAD_EXPERIMENTER",
		"OFPBRC_BAD_EXP_TYPE", "OFPBRC_EPERM", "OFPBRC_BAD_LEN", "OFPBRC_BUFFER_EMPTY",
		"OFPBRC_BUFFER_UNKNOWN", "OFPBRC_BAD_TABLE_ID", "OFPBRC_IS_SLAVE", "OFPBRC_BAD_PORT",
		"OFPBRC_BAD_PACKET", "OFPBRC_MULTIPART_BUFFER_OVERFLOW"},
	{"OFPBAC_BAD_TYPE", "OFPBAC_BAD_LEN", "OFPBAC_BAD_EXPERIMENTER", "OFPBAC_BAD_EXP_TYPE",
		"OFPBAC_BAD_OUT_PORT", "OFPBAC_BAD_ARGUMENT", "OFPBAC_EPERM", "OFPBAC_TOO_MANY",
		"OFPBAC_BAD_QUEUE", "OFPBAC_BAD_OUT_GROUP", "OFPBAC_MATCH_INCONSISTENT",
		"OFPBAC_UNSUPPORTED_ORDER", "OFPBAC_BAD_TAG", "OFPBAC_BAD_SET_TYPE", "OFPBAC_BAD_SET_LEN",
		"OFPBAC_BAD_SET_ARGUMENT"},
	{"OFPBIC_UNKNOWN_INST", "OFPBIC_UNSUP_INST", "OFPBIC_BAD_TABLE_ID", "OFPBIC_UNSUP_METADATA",
		"OFPBIC_UNSUP_METADATA_MASK", "OFPBIC_BAD_EXPERIMENTER", "OFPBIC_BAD_EXP_TYPE",
		"OFPBIC_BAD_LEN", "OFPBIC_EPERM"},
	{"OFPBMC_BAD_TYPE", "OFPBMC_BAD_LEN", "OFPBMC_BAD_TAG", "OFPBMC_BAD_DL_ADDR_MASK",
		"OFPBMC_BAD_NW_ADDR_MASK", "OFPBMC_BAD_WILDCARDS", "OFPBMC_BAD_FIELD", "OFPBMC_BAD_VALUE",
		"OFPBMC_BAD_MASK", "OFPBMC_BAD_PREREQ", "OFPBMC_DUP_FIELD", "OFPBMC_EPERM"},
	{"OFPFMFC_UNKNOWN", "OFPFMFC_TABLE_FULL", "OFPFMFC_BAD_TABLE_ID", "OFPFMFC_OVERLAP",
		"OFPFMFC_EPERM", "OFPFMFC_BAD_TIMEOUT", "OFPFMFC_BAD_COMMAND", "OFPFMFC_BAD_FLAGS"},
	{"OFPGMFC_GROUP_EXISTS", "OFPGMFC_INVALID_GROUP", "OFPGMFC_WEIGHT_UNSUPPORTED",
		"OFPGMFC_OUT_OF_GROUPS", "OFPGMFC_OUT_OF_BUCKETS", "OFPGMFC_CHAINING_UNSUPPORTED",
		"OFPGMFC_WATCH_UNSUPPORTED", "OFPGMFC_LOOP", "OFPGMFC_UNKNOWN_GROUP", "OFPGMFC_CHAINED_GROUP",
		"OFPGMFC_BAD_TYPE", "OFPGMFC_BAD_COMMAND", "OFPGMFC_BAD_BUCKET", "OFPGMFC_BAD_WATCH",
		"OFPGMFC_EPERM"},
	{"OFPPMFC_BAD_PORT", "OFPPMFC_BAD_HW_ADDR", "OFPPMFC_BAD_CONFIG", "OFPPMFC_BAD_ADVERTISE",
		"OFPPMFC_EPERM"},
	{"OFPTMFC_BAD_TABLE", "OFPTMFC_BAD_CONFIG", "OFPTMFC_EPERM"},
	{"OFPQOFC_BAD_PORT", "OFPQOFC_BAD_QUEUE", "OFPQOFC_EPERM"},
	{"OFPSCFC_BAD_FLAGS", "OFPSCFC_BAD_LEN", "OFPSCFC_EPERM"},
	{"OFPRRFC_STALE", "OFPRRFC_UNSUP", "OFPRRFC_BAD_ROLE"},
	{"OFPMMFC_UNKNOWN", "OFPMMFC_METER_EXISTS", "OFPMMFC_INVALID_METER", "OFPMMFC_UNKNOWN_METER",
		"OFPMMFC_BAD_COMMAND", "OFPMMFC_BAD_FLAGS", "OFPMMFC_BAD_RATE", "OFPMMFC_BAD_BURST",
		"OFPMMFC_BAD_BAND", "OFPMMFC_BAD_BAND_VALUE", "OFPMMFC_OUT_OF_METERS", "OFPMMFC_OUT_OF_BANDS"},
	{"OFPTFFC_BAD_TABLE", "OFPTFFC_BAD_METADATA", "OFPTFFC_BAD_TYPE", "OFPTFFC_BAD_LEN",
		"OFPTFFC_BAD_ARGUMENT", "OFPTFFC_EPERM"},
}

// onfBundleCodeBase is the first ONF bundle error code (OFPBFC_UNKNOWN).
const onfBundleCodeBase = 2300

// onfBundleCodeNames are the ONF extension bundle error codes 2300.. (OpenFlow 1.3).
var onfBundleCodeNames = [...]string{
	"OFPBFC_UNKNOWN", "OFPBFC_EPERM", "OFPBFC_BAD_ID", "OFPBFC_BUNDLE_EXIST", "OFPBFC_BUNDLE_CLOSED",
	"OFPBFC_OUT_OF_BUNDLES", "OFPBFC_BAD_TYPE", "OFPBFC_BAD_FLAGS", "OFPBFC_MSG_BAD_LEN",
	"OFPBFC_MSG_BAD_XID", "OFPBFC_MSG_UNSUP", "OFPBFC_MSG_CONFLICT", "OFPBFC_MSG_TOO_MANY",
	"OFPBFC_MSG_FAILED", "OFPBFC_TIMEOUT", "OFPBFC_BUNDLE_IN_PROGRESS",
}

// ErrTypeName names an ofp_error_type, e.g. "OFPET_BAD_MATCH".
func ErrTypeName(typ uint16) string {
	if int(typ) < len(errTypeNames) {
		return errTypeNames[typ]
	}
	if typ == 0xffff {
		return "OFPET_EXPERIMENTER"
	}
	return fmt.Sprintf("OFPET_%d", typ)
}

// ErrCodeName names the code of an error of the given type, e.g.
// "OFPBMC_BAD_FIELD". Experimenter errors are named by experimenter ID and
// code ("OFPBFC_MSG_FAILED" for the ONF bundle errors).
func ErrCodeName(typ, code uint16, experimenter uint32) string {
	switch {
	case typ == 0xffff && experimenter == onfExperimenter:
		if i := int(code) - onfBundleCodeBase; i >= 0 && i < len(onfBundleCodeNames) {
			return onfBundleCodeNames[i]
		}
		return fmt.Sprintf("ONF_%d", code)
	case typ == 0xffff && experimenter == nxExperimenter:
		return fmt.Sprintf("NX_%d", code)
	case typ == 0xffff:
		return fmt.Sprintf("EXP_%#x_%d", experimenter, code)
	case int(typ) < len(errCodeNames) && int(code) < len(errCodeNames[typ]):
		return errCodeNames[typ][code]
	}
	return fmt.Sprintf("CODE_%d", code)
}

// flowModCommandNames are the ofp_flow_mod_command names in lower case.
var flowModCommandNames = [...]string{"add", "modify", "modify_strict", "delete", "delete_strict"}

func flowModCommandName(c uint8) string {
	if int(c) < len(flowModCommandNames) {
		return flowModCommandNames[c]
	}
	return fmt.Sprintf("command_%d", c)
}

// multipartTypeNames are the ofp_multipart_type names (OFPMP_ prefix dropped).
var multipartTypeNames = [...]string{
	"DESC", "FLOW", "AGGREGATE", "TABLE", "PORT_STATS", "QUEUE", "GROUP", "GROUP_DESC",
	"GROUP_FEATURES", "METER", "METER_CONFIG", "METER_FEATURES", "TABLE_FEATURES", "PORT_DESC",
}

func multipartTypeName(t uint16) string {
	if int(t) < len(multipartTypeNames) {
		return "OFPMP_" + multipartTypeNames[t]
	}
	if t == mpExperimenter {
		return "OFPMP_EXPERIMENTER"
	}
	return fmt.Sprintf("OFPMP_%d", t)
}

// bundleCtrlTypeNames are the ONF bundle control types (open, close, commit, discard + replies).
var bundleCtrlTypeNames = [...]string{
	"OPEN_REQUEST", "OPEN_REPLY", "CLOSE_REQUEST", "CLOSE_REPLY",
	"COMMIT_REQUEST", "COMMIT_REPLY", "DISCARD_REQUEST", "DISCARD_REPLY",
}

func bundleCtrlTypeName(t uint16) string {
	if int(t) < len(bundleCtrlTypeNames) {
		return bundleCtrlTypeNames[t]
	}
	return fmt.Sprintf("TYPE_%d", t)
}
