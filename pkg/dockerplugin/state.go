package dockerplugin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Network is a Docker network bound to a network of the cluster view.
// Several Docker networks may bind the same cluster network (they are then
// one network): Docker network names are unknown to the plugin, and a
// refusal would lock out a user whose dockerd lost its networks while the
// plugin kept its bindings.
type Network struct {
	ID       string       `json:"id"`      // Docker's network id
	Name     string       `json:"network"` // cluster view network
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway,omitzero"` // as Docker recorded it (IPv4Data.Gateway)
	Internal bool         `json:"internal,omitempty"`
}

// state is what the plugin knows. Network bindings are persisted (Docker
// does not send CreateNetwork again after a plugin or dockerd restart);
// endpoints live in memory only: Docker's CreateEndpoint and Join come
// within milliseconds, and the calls after an agent restart (Leave,
// DeleteEndpoint, Revoke) go to the Endpoints backend by id, which finds
// them in OVSDB.
type state struct {
	mu        sync.Mutex
	path      string // "" keeps the bindings in memory only
	networks  map[string]Network
	endpoints map[string]Endpoint
	// pending hands the network RequestPool resolved over to the
	// CreateNetwork that follows it (which has only the pool): subnet ->
	// network name, "" when two different networks asked for the subnet.
	pending map[netip.Prefix]string
}

// stateFile is the persisted form.
type stateFile struct {
	Networks []Network `json:"networks"`
}

func loadState(path string) (*state, error) {
	st := &state{path: path, networks: map[string]Network{}, endpoints: map[string]Endpoint{}, pending: map[netip.Prefix]string{}}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker plugin state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("docker plugin state %s: %w (it is written atomically, so someone edited it: fix it, or remove it and re-create the Docker networks of driver ofctl-agent)", path, err)
	}
	for _, n := range f.Networks {
		if n.ID == "" || n.Name == "" || !n.Subnet.IsValid() {
			return nil, fmt.Errorf("docker plugin state %s: incomplete network %+v", path, n)
		}
		st.networks[n.ID] = n
	}
	return st, nil
}

// saveLocked writes the bindings to a temporary file, syncs it and renames
// it over the state file, so that a crash leaves the old or the new
// version, never a torn one. The caller holds mu.
func (st *state) saveLocked() error {
	if st.path == "" {
		return nil
	}
	f := stateFile{Networks: slices.SortedFunc(maps.Values(st.networks), func(a, b Network) int {
		return cmp.Compare(a.ID, b.ID)
	})}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(st.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("docker plugin state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(st.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("docker plugin state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename it is gone already
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("docker plugin state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("docker plugin state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("docker plugin state: %w", err)
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return fmt.Errorf("docker plugin state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (st *state) putNetwork(n Network) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	old, had := st.networks[n.ID]
	st.networks[n.ID] = n
	if err := st.saveLocked(); err != nil {
		if had {
			st.networks[n.ID] = old
		} else {
			delete(st.networks, n.ID)
		}
		return err
	}
	return nil
}

// deleteNetwork forgets a binding; it reports whether there was one.
func (st *state) deleteNetwork(id string) (Network, bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	n, ok := st.networks[id]
	if !ok {
		return n, false, nil
	}
	delete(st.networks, id)
	if err := st.saveLocked(); err != nil {
		st.networks[id] = n
		return n, true, err
	}
	return n, true, nil
}

func (st *state) network(id string) (Network, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	n, ok := st.networks[id]
	return n, ok
}

func (st *state) putEndpoint(ep Endpoint) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.endpoints[ep.ID] = ep
}

func (st *state) endpoint(id string) (Endpoint, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ep, ok := st.endpoints[id]
	return ep, ok
}

func (st *state) deleteEndpoint(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.endpoints, id)
}

// notePool records that RequestPool gave subnet to network name.
func (st *state) notePool(subnet netip.Prefix, name string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.pending[subnet]; ok && old != name {
		name = "" // two networks with this subnet in flight: ambiguous
	}
	st.pending[subnet] = name
}

// takePool returns and forgets the network RequestPool gave subnet to.
func (st *state) takePool(subnet netip.Prefix) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	name, ok := st.pending[subnet]
	delete(st.pending, subnet)
	return name, ok && name != ""
}

func (st *state) forgetPool(subnet netip.Prefix) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.pending, subnet)
}
