package attach

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// Container is what Attach plumbs into: an id recorded in the port's
// external_ids:container_id and its open network namespace. Close it when
// done.
type Container struct {
	ID    string // Docker container id, or the namespace path
	NetNS *NetNS
	Name  string // the Docker container's name ("" for other targets)
}

// Close closes the container's namespace.
func (c Container) Close() error { return c.NetNS.Close() }

// NetNSTarget targets a namespace by path (ip netns, CNI), opened once. The
// id is the cleaned absolute path.
func NetNSTarget(path string) (Container, error) {
	if path == "" {
		return Container{}, fmt.Errorf("empty network namespace path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Container{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	ns, err := OpenNetNS(abs)
	if err != nil {
		return Container{}, err
	}
	return Container{ID: abs, NetNS: ns}, nil
}

// PIDTarget targets the network namespace of a process, opened once: the
// process may exit and its PID be reused afterwards, the namespace stays.
func PIDTarget(pid int) (Container, error) {
	if pid <= 0 {
		return Container{}, fmt.Errorf("invalid pid %d", pid)
	}
	return NetNSTarget("/proc/" + strconv.Itoa(pid) + "/ns/net")
}
