package attach

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rtnetlink has no ethtool settings, and vishvananda/netlink does not speak
// the ethtool generic netlink family: offloads are set with the SIOCETHTOOL
// ioctl on a socket opened inside the interface's namespace (an ioctl acts
// in the namespace of the socket it is made on).

// ethtoolValue is struct ethtool_value of <linux/ethtool.h>: a command and
// its one 32-bit argument or answer.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with its union holding a pointer (ifr_data),
// as SIOCETHTOOL reads it; padded to the size of struct ifreq.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [unsafe.Sizeof(unix.Ifreq{}) - unix.IFNAMSIZ - unsafe.Sizeof(uintptr(0))]byte
}

// TxChecksum implements Links with ETHTOOL_GTXCSUM.
func (Netlink) TxChecksum(ns *NetNS, name string) (bool, error) {
	v := ethtoolValue{cmd: unix.ETHTOOL_GTXCSUM}
	if err := ethtool(ns, name, &v); err != nil {
		return false, fmt.Errorf("read tx checksum offload of %s: %w", name, err)
	}
	return v.data != 0, nil
}

// SetTxChecksum implements Links with ETHTOOL_STXCSUM, then reads the
// setting back: the kernel may keep a feature that depends on others.
func (n Netlink) SetTxChecksum(ns *NetNS, name string, on bool) error {
	v := ethtoolValue{cmd: unix.ETHTOOL_STXCSUM}
	if on {
		v.data = 1
	}
	if err := ethtool(ns, name, &v); err != nil {
		return fmt.Errorf("set tx checksum offload of %s %s: %w", name, onOff(on), err)
	}
	got, err := n.TxChecksum(ns, name)
	if err != nil {
		return err
	}
	if got != on {
		return fmt.Errorf("tx checksum offload of %s is still %s after setting it %s", name, onOff(got), onOff(on))
	}
	return nil
}

// ethtool makes one SIOCETHTOOL request for interface name in namespace ns
// (nil: the caller's). A missing interface is ErrLinkNotFound (wrapped).
func ethtool(ns *NetNS, name string, v *ethtoolValue) error {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q: want 1..%d bytes", name, unix.IFNAMSIZ-1)
	}
	var fd int
	err := inNamespace(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("ioctl socket in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	req := ifreqData{data: unsafe.Pointer(v)}
	copy(req.name[:], name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	switch {
	case errno == 0:
		return nil
	case errors.Is(errno, unix.ENODEV):
		return fmt.Errorf("%s: %w", name, ErrLinkNotFound)
	}
	return fmt.Errorf("ethtool command %#x on %s: %w", v.cmd, name, errno)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
