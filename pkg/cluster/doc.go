// Package cluster is the agent's view of the cluster: which networks exist
// and which hosts (and, with the etcd backend, remote endpoints) are out
// there. A Source delivers a View and every later change; the View's
// Delta (or Diff, when a source does not know it) tells what changed so
// that the agent does work proportional to the change.
//
// The default Source, Static, reads one YAML file (annotated example:
// docs/cluster.example.yaml):
//
//	networks:
//	  - name: blue
//	    vni: 100
//	    subnet: 10.100.0.0/16
//	hosts:
//	  - name: host-a
//	    tunnel_ip: 192.0.2.1
//	    ranges: { blue: 10.100.1.0/24 }
//
// Rules; every problem of a file is reported at once, with its line:
//   - Unknown fields, duplicate keys and a second YAML document are errors;
//     an empty file is refused (ErrEmpty): write "networks: []" instead.
//   - Names: 1-63 characters for networks, 1-253 for hosts, of letters,
//     digits, '.', '_' and '-', starting and ending with a letter or digit;
//     unique among networks and among hosts.
//   - vni: required, MinVNI..MaxVNI (1..2^24-1, so that the same IDs suit
//     VXLAN and Geneve, though the GRE key has 32 bits), unique.
//   - subnet: IPv4 prefix without host bits set. Networks are isolated by
//     their VNI, so subnets of different networks may overlap.
//   - nat: optional, default true: containers' traffic leaving the host
//     by any interface but a gateway port is masqueraded to the host's
//     address; false routes it with the containers' own addresses (the
//     outside must route the subnet back to the hosts). The gateways'
//     packet filter refuses a NAT network whose subnet overlaps the
//     underlay, and networks whose subnets overlap (docs/gateway.md).
//   - tunnel_ip: IPv4 unicast address, unique among hosts.
//   - ranges: network name -> IPv4 prefix without host bits, inside that
//     network's subnet, not overlapping another host's range in the same
//     network. A host without ranges only takes part in the tunnel mesh.
//   - gateways (host): network name -> the host's gateway address there
//     (pkg/gateway; default: the range's first host address): IPv4, in the
//     network's subnet, not its network or broadcast address, inside the
//     host's range when it has one, no other host's gateway nor a remote
//     endpoint's address. gateway (network): false turns the network's
//     gateways off (no gateways entry may name it then).
//
// Static watches the file's directory (so that editors' rename-and-replace
// and Kubernetes ConfigMap symlink swaps are seen), reads the file once per
// burst of events and again every Resync period. A version that does not
// parse or validate, or a file that went missing, is logged and passed to
// OnInvalid, and the last good view stays in force. Content that gives the
// same view is not published again.
//
// Views are normalized (sorted by name) and shared between readers: treat
// them as read-only. Other backends build views themselves and check them
// with Validate.
package cluster
