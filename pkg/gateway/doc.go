// Package gateway is the identity of a host's gateways: one per network the
// host serves, an OVS internal port in the host's namespace carrying the
// gateway address with the network's prefix length, the containers'
// default route towards the host and the outside world.
//
// PortName names the port deterministically (every host names a network's
// gateway port the same way); Plan computes this host's gateways from the
// cluster view:
//
//   - a network with "gateway: false" in the view has none;
//   - the address is the host's "gateways:" entry for the network in the
//     view, else the agent's configured one (etcd mode, where hosts have no
//     ranges), else the first host address of the host's range (the
//     range's address + 1: 10.100.1.1 for 10.100.1.0/24); without any of
//     them (etcd mode, nothing configured) the network has no gateway here;
//   - the MAC is derived from the address (arp.DerivedMAC) like an
//     endpoint's, so that in static mode other hosts reach it through the
//     range flows that reach the host's endpoints.
//
// An address that cannot be a gateway (outside the subnet or the host's
// range, the network's network or broadcast address) is refused with a
// Problem, the network then has no gateway here; other networks are not
// affected.
package gateway
