package attach

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NetNS is an open network namespace. Every step of Attach and Detach acts
// through its file descriptor, never by reopening a path, so the namespace
// cannot change between steps: a container that exits and whose PID is
// reused, or a path mounted over, leaves the steps in the namespace that was
// opened. A nil *NetNS is the caller's own namespace.
type NetNS struct {
	f    *os.File // nil: a name without a namespace (unit tests' fakes)
	path string
	id   nsID
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

// ErrHostNetNS refuses a target namespace that is not a container's: the
// host's, attach's own, or the bridge's (see Attacher.AllowHostNetNS).
var ErrHostNetNS = errors.New("not a container's network namespace")

// OpenNetNS opens the network namespace at path (a bind mount such as
// /var/run/netns/NAME, or /proc/PID/ns/net). It refuses anything that is
// not a namespace file, such as the empty mount point "ip netns delete"
// leaves behind. Close it when done.
func OpenNetNS(path string) (*NetNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	switch {
	case unix.Fstatfs(int(f.Fd()), &fs) != nil || fs.Type != unix.NSFS_MAGIC:
		f.Close()
		return nil, fmt.Errorf("network namespace %s: not a namespace file", path)
	case unix.Fstat(int(f.Fd()), &st) != nil:
		f.Close()
		return nil, fmt.Errorf("network namespace %s: fstat failed", path)
	}
	return &NetNS{f: f, path: path, id: nsID{st.Dev, st.Ino}}, nil
}

// Close closes the namespace's descriptor. It is safe on nil.
func (n *NetNS) Close() error {
	if n == nil || n.f == nil {
		return nil
	}
	return n.f.Close()
}

// Path is where the namespace was opened ("" for the caller's own).
func (n *NetNS) Path() string {
	if n == nil {
		return ""
	}
	return n.path
}

func (n *NetNS) String() string {
	if n == nil {
		return "current namespace"
	}
	return n.path
}

// fd is the namespace's descriptor, -1 when it has none.
func (n *NetNS) fd() int {
	if n == nil || n.f == nil {
		return -1
	}
	return int(n.f.Fd())
}

// is reports whether the namespace is the one at path (by device and
// inode); false when either cannot be read.
func (n *NetNS) is(path string) bool {
	var st unix.Stat_t
	if n == nil || n.f == nil || unix.Stat(path, &st) != nil {
		return false
	}
	return n.id == nsID{st.Dev, st.Ino}
}

// same reports whether two open namespaces are one; nil is the caller's.
func (n *NetNS) same(o *NetNS) bool {
	switch {
	case o == nil:
		return n.is(ownNetNS)
	case n == nil:
		return o.is(ownNetNS)
	}
	return n.f != nil && o.f != nil && n.id == o.id
}

// The namespaces a container target must not be: the process's own (of
// its main thread: other threads enter namespaces only while locked) and
// that of PID 1, the host's.
const (
	ownNetNS  = "/proc/self/ns/net"
	hostNetNS = "/proc/1/ns/net"
)

// checkTarget refuses a target namespace that is the host's, the caller's
// own, or hostNS (where the bridge and the host ends live): attaching there
// would give the host itself an interface, an address and a route.
func checkTarget(target, hostNS *NetNS) error {
	var what string
	switch {
	case target.is(hostNetNS):
		what = "the host's (PID 1's)"
	case target.is(ownNetNS):
		what = "this process's own"
	case hostNS != nil && target.same(hostNS):
		what = "the bridge's (--netns-host)"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s network namespace (a container started with --network host or --pid 1?): attaching would plumb the host itself; --force-host-netns does it anyway",
		ErrHostNetNS, target, what)
}
