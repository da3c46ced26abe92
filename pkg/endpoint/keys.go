// Package endpoint defines how a local endpoint is described on an OVS
// Interface row: the external_ids keys any tool (ofctl-agent attach, a CNI
// plugin, ovs-vsctl by hand) writes, and their parsing into a validated
// endpoint.
package endpoint

// External_ids keys on an OVS Interface that make it an endpoint. The
// container keys are the ones ovs-docker wrote, so ports it created can be
// adopted by adding the three ofctl keys.
const (
	KeyNetwork = "ofctl-agent.network" // network name from the cluster view (required)
	KeyIP      = "ofctl-agent.ip"      // IPv4 address, no prefix length (required)
	KeyMAC     = "ofctl-agent.mac"     // container-side MAC; default derived from the IP (0a:58:<ip>)
	KeyOwner   = "ofctl-agent.owner"   // "attach" when ofctl-agent attach created the port

	KeyContainerID    = "container_id"    // container id or namespace path (ovs-docker's key)
	KeyContainerIface = "container_iface" // interface name inside the container (ovs-docker's key)
)
