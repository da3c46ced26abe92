package cluster

import (
	"cmp"
	"fmt"
)

// Delta is what changed from one view to the next, so that the agent does
// work proportional to the change. Every list is in the views' order.
type Delta struct {
	// From is the revision of the view the change starts from.
	From int64

	NetworksAdded, NetworksRemoved []Network
	NetworksChanged                []NetworkChange
	HostsAdded, HostsRemoved       []Host
	HostsChanged                   []HostChange
	EndpointsAdded                 []RemoteEndpoint
	EndpointsRemoved               []RemoteEndpoint
	EndpointsChanged               []EndpointChange // same network and IP, other MAC, host or name
}

// NetworkChange is a network present in both views with another VNI or subnet.
type NetworkChange struct{ Old, New Network }

// HostChange is a host present in both views with another tunnel IP or ranges.
type HostChange struct{ Old, New Host }

// EndpointChange is an endpoint present in both views with another MAC, host
// or name.
type EndpointChange struct{ Old, New RemoteEndpoint }

// Empty reports whether nothing changed.
func (d Delta) Empty() bool {
	return len(d.NetworksAdded)+len(d.NetworksRemoved)+len(d.NetworksChanged)+
		len(d.HostsAdded)+len(d.HostsRemoved)+len(d.HostsChanged)+
		len(d.EndpointsAdded)+len(d.EndpointsRemoved)+len(d.EndpointsChanged) == 0
}

// String summarises the delta in counts, for log lines.
func (d Delta) String() string {
	return fmt.Sprintf("networks +%d -%d ~%d, hosts +%d -%d ~%d, endpoints +%d -%d ~%d",
		len(d.NetworksAdded), len(d.NetworksRemoved), len(d.NetworksChanged),
		len(d.HostsAdded), len(d.HostsRemoved), len(d.HostsChanged),
		len(d.EndpointsAdded), len(d.EndpointsRemoved), len(d.EndpointsChanged))
}

// Diff compares two normalized views in one pass over their sorted lists.
func Diff(old, new View) Delta {
	d := Delta{From: old.Revision}
	d.NetworksAdded, d.NetworksRemoved, d.NetworksChanged = diffSorted(old.Networks, new.Networks,
		func(a, b Network) int { return cmp.Compare(a.Name, b.Name) },
		func(a, b Network) bool { return a == b },
		func(a, b Network) NetworkChange { return NetworkChange{a, b} })
	d.HostsAdded, d.HostsRemoved, d.HostsChanged = diffSorted(old.Hosts, new.Hosts,
		func(a, b Host) int { return cmp.Compare(a.Name, b.Name) },
		Host.Equal,
		func(a, b Host) HostChange { return HostChange{a, b} })
	d.EndpointsAdded, d.EndpointsRemoved, d.EndpointsChanged = diffSorted(old.EndpointList(), new.EndpointList(),
		compareEndpoints,
		RemoteEndpoint.Equal,
		func(a, b RemoteEndpoint) EndpointChange { return EndpointChange{a, b} })
	return d
}

// diffSorted merges two lists sorted by key: keys only in b are added, only
// in a removed, in both but not equal changed.
func diffSorted[T, C any](a, b []T, key func(T, T) int, equal func(T, T) bool, change func(T, T) C) (added, removed []T, changed []C) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = key(a[i], b[j])
		}
		switch {
		case c < 0:
			removed = append(removed, a[i])
			i++
		case c > 0:
			added = append(added, b[j])
			j++
		default:
			if !equal(a[i], b[j]) {
				changed = append(changed, change(a[i], b[j]))
			}
			i++
			j++
		}
	}
	return added, removed, changed
}
