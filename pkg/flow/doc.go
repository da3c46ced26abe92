// Package flow models OpenFlow 1.3 flows as values.
//
// A Flow has a table, priority, cookie, a typed Match (in_port, Ethernet
// and ARP addresses, IPv4 prefixes, tunnel metadata, registers) and a list of
// typed Actions (output, goto_table, set_field, load, move). It is:
//
//   - printed by String exactly as `ovs-ofctl -O OpenFlow13 dump-flows
//     --no-stats` prints it in OVS 3.1 (verified against the real switch);
//   - encoded by FlowMod into a libOpenflow *openflow13.FlowMod for ADD,
//     MODIFY_STRICT and DELETE_STRICT, byte for byte as OVS returns the flow
//     in flow stats;
//   - identified by Key (table, priority, canonical match) and Content
//     (cookie and instructions), which DecodeFlowStats computes identically
//     from OFPMP_FLOW replies, so desired and actual flows diff as values.
//
// Stats.Flow decodes a flow read from the switch back into a Flow when it is
// representable exactly, and fails with ErrUnsupported otherwise; malformed
// bytes give ErrMalformed, never a panic.
package flow
