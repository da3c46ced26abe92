// Package endpoint defines how a local endpoint is described on an OVS
// Interface row: the external_ids keys any tool (ofctl-agent attach, a CNI
// plugin, ovs-vsctl by hand) writes, their parsing into a validated
// endpoint, and the status keys the agent writes back.
//
// # The installed signal
//
// Once an endpoint's flows are committed in OVS (the bundle confirmed), the
// agent sets external_ids:ofctl-agent.installed on its Interface row to the
// endpoint's IP address, the value of ofctl-agent.ip it installed. It
// removes the key when the flows are no longer there or no longer wanted:
// the port lost its address to the holder, its values became invalid, its
// flows were removed, a commit failed. While it does not program an
// endpoint (bad values, a conflict, a network or range the cluster view
// refuses, no usable ofport) it sets external_ids:ofctl-agent.error to the
// reason, the text of its log line, and removes it when the reason goes.
//
// A client that created or changed a port waits until installed equals the
// IP it asked for (pkg/ovsdb's Client.WaitInstalled, or
//
//	ovs-vsctl wait-until Interface PORT external_ids:ofctl-agent.installed=IP
//
// from a shell), and gives up on an error. A mark with another value is
// stale (the port's address changed and the agent has not installed the
// new one yet). The mark is not withdrawn while the agent repairs flows by
// itself (drift, an ovs-vswitchd restart) or while it is not running: it
// says what the agent last installed. Writers of endpoint keys must not set
// these two keys; replacing external_ids as a whole drops them until the
// agent writes them again.
//
// The mark also keeps the holder of an address across agent restarts: when
// two ports claim one address, the one whose mark shows it held the address
// (installed equals its ip) is admitted first. The agent never marks two
// ports with one address of a network; were two marked all the same (by a
// hand edit, or a tool copying external_ids), the first by port name wins,
// as among unmarked ports.
package endpoint

// External_ids keys on an OVS Interface that make it an endpoint. The
// container keys are the ones ovs-docker wrote, so ports it created can be
// adopted by adding the three ofctl keys.
const (
	KeyNetwork = "ofctl-agent.network" // network name from the cluster view (required)
	KeyIP      = "ofctl-agent.ip"      // IPv4 address, no prefix length (required)
	KeyMAC     = "ofctl-agent.mac"     // container-side MAC; default derived from the IP (0a:58:<ip>)
	KeyOwner   = "ofctl-agent.owner"   // "attach" when ofctl-agent attach created the port
	KeyName    = "ofctl-agent.name"    // the endpoint's name in DNS, one label (ValidateName); optional
	KeyPorts   = "ofctl-agent.ports"   // published host ports, "tcp:8080:80,udp:5353:53" (ParsePorts); optional
	// KeyRole is "gateway" on the agent's own gateway ports (pkg/gateway);
	// the agent honours it only on the ports it made for its gateways.
	KeyRole = "ofctl-agent.role"

	KeyContainerID    = "container_id"    // container id or namespace path (ovs-docker's key)
	KeyContainerIface = "container_iface" // interface name inside the container (ovs-docker's key)
)

// RoleGateway is KeyRole's value on a gateway port.
const RoleGateway = "gateway"

// Status keys: written by the agent alone (see the package comment).
const (
	KeyInstalled = "ofctl-agent.installed" // the IP whose flows are in OVS
	KeyError     = "ofctl-agent.error"     // why the agent does not program the endpoint
	// KeyPublishError says why the agent does not publish one of the
	// endpoint's ports (KeyPorts): a host port another endpoint holds, a
	// network without a gateway here. The endpoint itself is programmed.
	KeyPublishError = "ofctl-agent.publish-error"
)

// Status is what the agent says about an interface: the IP whose flows are
// installed ("": none) and why it does not program it ("": no reason).
type Status struct {
	Installed    string
	Error        string
	PublishError string // why a published port is refused ("": none is)
}

// StatusOf reads the status keys of an interface's external_ids.
func StatusOf(ext map[string]string) Status {
	return Status{Installed: ext[KeyInstalled], Error: ext[KeyError], PublishError: ext[KeyPublishError]}
}

// ExternalIDs is s as the external_ids to write: a key with "" is to be
// removed.
func (s Status) ExternalIDs() map[string]string {
	return map[string]string{KeyInstalled: s.Installed, KeyError: s.Error, KeyPublishError: s.PublishError}
}

// HeldAddress reports whether an interface's external_ids show that the
// agent installed the address it claims now (its installed mark equals its
// ip): at a restart such a port keeps the address against another claimant.
func HeldAddress(ext map[string]string) bool {
	ip, ok := ext[KeyIP]
	return ok && ip != "" && ext[KeyInstalled] == ip
}
