package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// Hand-made frames for what the kernel's own tools cannot send: ARP claiming
// another address, and GRE from a rogue underlay host (forged outer source,
// arbitrary key). They are sent with an AF_PACKET socket opened inside the
// sender's namespace.

const (
	plEthIPv4 = 0x0800
	plEthARP  = 0x0806
	plEthTEB  = 0x6558 // transparent Ethernet bridging: GRE carrying Ethernet
)

var plBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// plEther is an Ethernet frame.
func plEther(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], typ)
	return append(b, payload...)
}

// plIPv4 is an IPv4 packet without options (DF set, TTL 64).
func plIPv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[6:8], 0x4000)
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	binary.BigEndian.PutUint16(h[10:12], plChecksum(h))
	return append(h, payload...)
}

// plICMPEcho is an ICMP echo request.
func plICMPEcho(id, seq uint16) []byte {
	b := append(make([]byte, 8), "ofctl-agent e2e rogue"...)
	b[0] = 8
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	binary.BigEndian.PutUint16(b[2:4], plChecksum(b))
	return b
}

// plGRE is a GRE header with the key bit (as OVS sends with options:key=flow)
// followed by an Ethernet frame.
func plGRE(key uint32, inner []byte) []byte {
	b := make([]byte, 8, 8+len(inner))
	binary.BigEndian.PutUint16(b[0:2], 0x2000)
	binary.BigEndian.PutUint16(b[2:4], plEthTEB)
	binary.BigEndian.PutUint32(b[4:8], key)
	return append(b, inner...)
}

// plARP is an Ethernet/IPv4 ARP packet body.
func plARP(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], plEthIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	s, d := spa.As4(), tpa.As4()
	copy(b[8:14], sha)
	copy(b[14:18], s[:])
	copy(b[18:24], tha)
	copy(b[24:28], d[:])
	return b
}

// plChecksum is the Internet checksum.
func plChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// plSendRaw sends complete Ethernet frames out of ifname inside ns. The
// work runs on a locked OS thread that enters ns and goes back to its own
// namespace before it is unlocked. (Leaving it in ns is not an option: if
// it is the main thread, the runtime keeps it, the whole test process then
// counts as living in ns, and the test bed's cleanup of ns kills it.)
func plSendRaw(ns testbed.NetNS, ifname string, frames ...[]byte) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("own netns: %w", err)
			return
		}
		defer home.Close()
		err = plSendFromHere(ns, ifname, frames)
		if rerr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("back to own netns: %w", rerr)) // stays locked: the thread is discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// plSendFromHere enters ns on the current (locked) thread and sends.
func plSendFromHere(ns testbed.NetNS, ifname string, frames [][]byte) error {
	f, err := os.Open(ns.Path())
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("interface %s in %s: %w", ifname, ns, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // send only
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	for _, fr := range frames {
		typ := binary.BigEndian.Uint16(fr[12:14])
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Protocol: typ<<8 | typ>>8}
		copy(sa.Addr[:], fr[0:6])
		if err := unix.Sendto(fd, fr, 0, sa); err != nil {
			return fmt.Errorf("send on %s: %w", ifname, err)
		}
	}
	return nil
}
