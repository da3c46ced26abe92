package attach

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Container is what Attach plumbs into: an id recorded in the port's
// external_ids:container_id and the path of its network namespace.
type Container struct {
	ID    string // Docker container id, or the namespace path
	NetNS string // e.g. /proc/1234/ns/net or /var/run/netns/foo
}

// NetNSTarget targets a namespace by path (ip netns, CNI). The id is the
// cleaned absolute path.
func NetNSTarget(path string) (Container, error) {
	if path == "" {
		return Container{}, fmt.Errorf("empty network namespace path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Container{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if err := checkNetNS(abs); err != nil {
		return Container{}, err
	}
	return Container{ID: abs, NetNS: abs}, nil
}

// PIDTarget targets the network namespace of a process.
func PIDTarget(pid int) (Container, error) {
	if pid <= 0 {
		return Container{}, fmt.Errorf("invalid pid %d", pid)
	}
	return NetNSTarget("/proc/" + strconv.Itoa(pid) + "/ns/net")
}

// checkNetNS makes sure path is a namespace file (on nsfs), not the empty
// mount point an "ip netns delete" leaves behind or some other file.
func checkNetNS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("network namespace %s: %w", path, &os.PathError{Op: "statfs", Path: path, Err: err})
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("network namespace %s: not a namespace file", path)
	}
	return nil
}
