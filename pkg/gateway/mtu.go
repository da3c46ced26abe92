package gateway

// TunnelOverhead is what GRE with a key over IPv4 adds to a container's
// packet: the outer IPv4 header (20), the GRE header with the key (8) and
// the inner Ethernet header (14) that the container's MTU does not count.
const TunnelOverhead = 20 + 8 + 14

// ContainerMTU is the containers' (and gateways') MTU over an underlay
// interface of MTU underlay: 1500 gives 1458.
func ContainerMTU(underlay int) int { return underlay - TunnelOverhead }
