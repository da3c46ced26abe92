package attach

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
)

// vsctlPorts implements Ports for integration tests by running ovs-vsctl
// against a test node's database (the agent uses pkg/ovsdb instead).
type vsctlPorts struct {
	db, bridge string
}

func (v vsctlPorts) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ovs-vsctl", append([]string{"--timeout=10", "--db=" + v.db}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (v vsctlPorts) AddPort(ctx context.Context, name string, ext map[string]string) error {
	args := []string{"add-port", v.bridge, name, "--", "set", "interface", name}
	for _, k := range slices.Sorted(maps.Keys(ext)) {
		args = append(args, fmt.Sprintf("external_ids:%s=%q", k, ext[k]))
	}
	_, err := v.run(ctx, args...)
	return err
}

func (v vsctlPorts) DeletePort(ctx context.Context, name string) error {
	_, err := v.run(ctx, "--if-exists", "del-port", v.bridge, name)
	return err
}

func (v vsctlPorts) Ports(ctx context.Context) ([]Port, error) {
	out, err := v.run(ctx, "list-ports", v.bridge)
	if err != nil {
		return nil, err
	}
	names := strings.Fields(out)
	if len(names) == 0 {
		return nil, nil
	}
	out, err = v.run(ctx, append([]string{"--format=json", "--columns=name,external_ids", "list", "interface"}, names...)...)
	if err != nil {
		return nil, err
	}
	return parseInterfaces([]byte(out))
}

func (v vsctlPorts) DatapathType(ctx context.Context) (string, error) {
	out, err := v.run(ctx, "get", "bridge", v.bridge, "datapath_type")
	return strings.Trim(strings.TrimSpace(out), `"`), err
}

// parseInterfaces reads ovs-vsctl's JSON table: rows of [name, ["map", [[k, v], ...]]].
func parseInterfaces(b []byte) ([]Port, error) {
	var table struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		return nil, err
	}
	var ports []Port
	for _, row := range table.Data {
		if len(row) != 2 {
			return nil, fmt.Errorf("row with %d columns", len(row))
		}
		var p Port
		var m []json.RawMessage
		var pairs [][2]string
		if err := json.Unmarshal(row[0], &p.Name); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(row[1], &m); err != nil || len(m) != 2 {
			return nil, fmt.Errorf("external_ids of %s: %s", p.Name, row[1])
		}
		if err := json.Unmarshal(m[1], &pairs); err != nil {
			return nil, fmt.Errorf("external_ids of %s: %w", p.Name, err)
		}
		p.ExternalIDs = map[string]string{}
		for _, kv := range pairs {
			p.ExternalIDs[kv[0]] = kv[1]
		}
		ports = append(ports, p)
	}
	return ports, nil
}
