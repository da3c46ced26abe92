// Package cniplugin is ofctl-cni, the agent's CNI plugin (spec 1.1: ADD,
// DEL, CHECK, GC, STATUS; older versions through the reference library's
// skel). It plumbs a container with pkg/attach (the same veth and OVS port
// as ofctl-agent attach, marked with its own owner "cni", container_id =
// CNI_CONTAINERID and container_iface = CNI_IFNAME), takes the address from
// the agent's allocator (attach.AgentAllocator) unless the configuration
// delegates IPAM to another plugin (host-local), and returns once the
// agent has installed the endpoint's flows (the port's
// ofctl-agent.installed mark, pkg/ovsdb WaitInstalled).
//
// Every failure is a *types.Error with a CNI code (see Error); ADD undoes
// what it did when a later step fails.
package cniplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
)

// Defaults of the configuration's optional fields.
const (
	DefaultBridge         = "br-int"
	DefaultOVSDB          = "unix:/var/run/openvswitch/db.sock"
	DefaultInstallTimeout = 10 * time.Second
	maxInstallTimeout     = 5 * time.Minute
	// Owner is the external_ids:ofctl-agent.owner of the plugin's ports;
	// DEL, CHECK and GC touch no other port.
	Owner = "cni"
)

// NetConf is the plugin's entry of a network configuration (list).
type NetConf struct {
	types.PluginConf
	// Network is the cluster view's network; default: the configuration's
	// name.
	Network string `json:"network,omitempty"`
	// Bridge is the integration bridge; default DefaultBridge.
	Bridge string `json:"bridge,omitempty"`
	// OVSDB is the OVSDB endpoint (unix:PATH, tcp:HOST:PORT); default
	// DefaultOVSDB.
	OVSDB string `json:"ovsdb,omitempty"`
	// OpenFlow is the bridge's OpenFlow management socket, where CHECK
	// reads the endpoint's flows; default
	// unix:/var/run/openvswitch/<bridge>.mgmt.
	OpenFlow string `json:"openflow,omitempty"`
	// AgentSocket is the agent's local API (its --api-socket); default
	// agentapi.DefaultSocket.
	AgentSocket string `json:"agentSocket,omitempty"`
	// MTU overrides the agent's container MTU; 0: the agent's.
	MTU int `json:"mtu,omitempty"`
	// InstallTimeout bounds ADD's wait for the agent to install the
	// endpoint's flows (Go duration); default DefaultInstallTimeout.
	InstallTimeout string `json:"installTimeout,omitempty"`
	// TxOffload is the container interface's TX checksum offload: auto
	// (default), on, off (see attach.TxOffload).
	TxOffload string `json:"txOffload,omitempty"`
	// LogFile, when set, is the absolute path of a file the plugin appends
	// its log to (log.go): what each command did and why it failed. Unset:
	// stderr only, which runtimes drop when the plugin fails (libcni keeps
	// it only when the plugin printed no error).
	LogFile string `json:"logFile,omitempty"`
	// LogLevel is LogFile's level: debug, info (default), warn or error.
	LogLevel string `json:"logLevel,omitempty"`

	installTimeout time.Duration
}

// ParseConfig decodes and validates the plugin's configuration (a CNI
// runtime's stdin) and fills in the defaults. Errors are *types.Error:
// ErrDecodingFailure for bad JSON, ErrInvalidNetworkConfig for a bad field.
func ParseConfig(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "the network configuration is not valid JSON for ofctl-cni", err.Error())
	}
	bad := func(field, value, why string) error {
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("network configuration: invalid %s %q: %s", field, value, why), "")
	}
	if c.Network == "" {
		c.Network = c.Name
	}
	if c.Network == "" || len(c.Network) > 253 || strings.ContainsFunc(c.Network, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return nil, bad("network", c.Network, "want the cluster's network name (field network, or the configuration's name), without spaces or control characters")
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/: \t\n\r\v\f") || c.Bridge == "." || c.Bridge == ".." {
		return nil, bad("bridge", c.Bridge, "want an interface name (at most 15 characters, no '/', ':' or spaces)")
	}
	if c.OVSDB == "" {
		c.OVSDB = DefaultOVSDB
	}
	if !strings.HasPrefix(c.OVSDB, "unix:/") && !strings.HasPrefix(c.OVSDB, "tcp:") {
		return nil, bad("ovsdb", c.OVSDB, "want unix:/PATH or tcp:HOST:PORT")
	}
	if c.OpenFlow == "" {
		c.OpenFlow = "unix:/var/run/openvswitch/" + c.Bridge + ".mgmt"
	}
	if !strings.HasPrefix(c.OpenFlow, "unix:/") && !strings.HasPrefix(c.OpenFlow, "tcp:") {
		return nil, bad("openflow", c.OpenFlow, "want unix:/PATH (the bridge's .mgmt socket) or tcp:HOST:PORT")
	}
	if c.AgentSocket == "" {
		c.AgentSocket = agentapi.DefaultSocket
	}
	if !filepath.IsAbs(c.AgentSocket) || strings.ContainsRune(c.AgentSocket, 0) {
		return nil, bad("agentSocket", c.AgentSocket, "want the absolute path of the agent's api-socket")
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return nil, bad("mtu", fmt.Sprint(c.MTU), "want 68..65535, or leave it out for the agent's MTU")
	}
	c.installTimeout = DefaultInstallTimeout
	if c.InstallTimeout != "" {
		d, err := time.ParseDuration(c.InstallTimeout)
		if err != nil || d <= 0 || d > maxInstallTimeout {
			return nil, bad("installTimeout", c.InstallTimeout, "want a duration such as 10s, above 0 and at most 5m")
		}
		c.installTimeout = d
	}
	if _, err := attach.ParseTxOffload(c.TxOffload); err != nil {
		return nil, bad("txOffload", c.TxOffload, "want auto, on or off")
	}
	if c.LogFile != "" && (!filepath.IsAbs(c.LogFile) || strings.ContainsRune(c.LogFile, 0) || strings.HasSuffix(c.LogFile, "/")) {
		return nil, bad("logFile", c.LogFile, "want the absolute path of a file, or leave it out")
	}
	if _, ok := logLevels[c.LogLevel]; !ok {
		return nil, bad("logLevel", c.LogLevel, "want debug, info, warn or error")
	}
	return c, nil
}

// InstallWait is the bound of ADD's wait for the agent.
func (c *NetConf) InstallWait() time.Duration { return c.installTimeout }

// Delegated reports whether an ipam section names another IPAM plugin.
func (c *NetConf) Delegated() bool { return c.IPAM.Type != "" }

// PodName returns K8S_POD_NAME from CNI_ARGS ("K=V;K=V"), "" when absent.
func PodName(cniArgs string) string {
	for _, kv := range strings.Split(cniArgs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "K8S_POD_NAME" {
			return v
		}
	}
	return ""
}
