// Package tunnel builds the flows that carry packets between hosts over one
// flow-based GRE port (options:remote_ip=flow, options:key=flow).
//
// Egress: the forwarding table stores the remote host's underlay address in
// a register and jumps to the egress table, whose single flow copies that
// register into tun_dst and the network's VNI into tun_id (the GRE key), then
// outputs to the tunnel port.
//
// Ingress: packets from the tunnel port are accepted only from known remote
// hosts (tun_src), then only for known networks (tun_id), which sets the
// network register and the from-tunnel bit before forwarding. Only IPv4
// crosses tunnels (ARP is answered locally on every host).
package tunnel
