// Package dockerplugin is a Docker network driver and IPAM driver (the
// libnetwork "remote" plugin protocol: JSON over HTTP POST on a unix socket
// under /run/docker/plugins) that binds Docker networks to the networks of
// the cluster view.
//
// Data flows one way: dockerd's call -> typed request (wire.go, strict
// decoding) -> checks against the cluster view and the plugin's bindings
// (network.go, endpoint.go, ipam.go) -> the agent's side, behind two narrow
// interfaces (backend.go): Addresses (this host's share of a network, shared
// with attach and CNI) and Endpoints (veth, OVS port, installed signal,
// published ports). Errors go back in Docker's format ({"Err": "..."}, HTTP
// 400 for bad input, 404 for an unknown call, 500 for the agent's failures),
// with a log line and ofctl_agent_docker_plugin_requests_total{call,result}.
//
// A Docker network is bound by name: `docker network create -d ofctl-agent
// --ipam-driver ofctl-agent --ipam-opt network=blue blue`. Docker gives -o
// options to the network driver only and --ipam-opt options to the IPAM
// driver only, and the IPAM driver is asked for the pool first, so the name
// must reach the IPAM driver (--ipam-opt network=NAME, or --subnet when one
// network of the view has that subnet); the network driver takes the name
// the IPAM driver resolved for the pool, or -o network=NAME. The only state
// kept is the Docker network id -> cluster network binding (Docker does not
// repeat CreateNetwork after a restart), written atomically to a file.
//
// The agent serves it in its own process (--docker-plugin): Addresses is
// HostAddresses on the agent's allocator, Endpoints is HostEndpoints (a
// veth pair in dockerd's namespace, whose host end is an OVS port named
// after Docker's endpoint id, carrying the endpoint's external_ids and
// Docker's ids; Join returns once the agent's installed mark is set), so
// OVSDB is the record of every endpoint and nothing else needs keeping.
//
// What dockerd 20.10 sends, and when, is in docs/docker.md.
package dockerplugin
