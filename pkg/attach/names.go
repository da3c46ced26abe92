package attach

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxIfNameLen is IFNAMSIZ-1: the longest Linux interface name.
const maxIfNameLen = 15

// HostIfName is the name of the host end of the veth for a container
// interface: "of", 11 hex digits of a hash of the container id and the
// interface name, and "_l" (15 characters, the shape ovs-docker used). The
// same pair always gives the same name, so Detach finds it again even when
// OVS has forgotten the port.
func HostIfName(containerID, ifname string) string { return nameStem(containerID, ifname) + "_l" }

func nameStem(containerID, ifname string) string {
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifname))
	return "of" + hex.EncodeToString(sum[:])[:11]
}

// validIfName applies the kernel's rules (dev_valid_name) for a name.
func validIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty interface name")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("interface name %q longer than %d characters", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return fmt.Errorf("interface name %q contains '/', ':' or white space", name)
	}
	return nil
}

// ValidIfName applies the kernel's rules for an interface name (IFNAMSIZ,
// no '/', ':' or white space).
func ValidIfName(name string) error { return validIfName(name) }
