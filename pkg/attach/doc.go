// Package attach plumbs a container into the integration bridge, replacing
// ovs-docker's add-port, del-port and del-ports: a veth pair is created with
// netlink with one end in the host namespace and the other made directly in
// the container's, with its name, MAC and MTU (moving a link between
// namespaces costs the kernel ~20 ms), addressed there, and the host end
// becomes an OVS port whose external_ids (pkg/endpoint keys) make it an
// endpoint.
//
// Attach is idempotent for the same container and interface with the same
// settings, refuses different settings or an IP or MAC another port holds in
// the network, and rolls back every step it did when a later one fails.
// Detach and DetachAll remove what Attach made.
//
// A new interface's address is held by an Allocator: AgentAllocator asks
// the agent's local API (pkg/agentapi), the host's one allocator, for the
// address given or one it picks, owned by "<kind>:<container id>/<ifname>"
// (attach, the CNI plugin), and a refused attach gives it back. Without an
// Allocator the address must be given.
//
// On the userspace datapath it also turns TX checksum offload off in the
// container (see TxOffload), with the SIOCETHTOOL ioctl.
//
// The container's namespace is opened once (NetNS, a file descriptor) and
// every step acts through that descriptor, so a PID reused or a path
// mounted over between steps cannot send a step elsewhere. A namespace that
// is not a container's (the host's, the caller's own, the bridge's) is
// refused unless Attacher.AllowHostNetNS: a container run with --network
// host or --pid 1 would otherwise give the host itself an interface, an
// address and a route.
//
// Side effects sit behind two small interfaces: Links (netlink and that
// ioctl, implemented by Netlink) and Ports (the bridge's ports and datapath
// type, implemented by OVSPorts over OVSDB). Namespaces are entered only on
// throw-away locked OS threads, so no caller thread is ever left in another
// namespace.
package attach
