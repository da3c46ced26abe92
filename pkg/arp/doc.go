// Package arp answers ARP requests in the datapath: one flow per known
// address (or per address range with derived MACs) turns a request into the
// reply in place and sends it back out of the input port, the way
// ovn-controller does. Nothing is learned from ARP packets.
//
// Addresses drawn from a host range have derived MACs: 0a:58 followed by the
// four bytes of the IPv4 address (a locally administered unicast prefix), so
// one flow answers a whole range by copying the requested address into the
// MAC it answers with.
package arp
