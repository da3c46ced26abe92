package resolver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
)

// Files returns duplicates of every served socket (a UDP socket and a TCP
// listener per network), for a service manager to hold while the agent
// restarts (systemd's file descriptor store: sd_notify "FDSTORE=1" with the
// files) and to give to the next process, which serves them through
// Inherit. Queries that arrive in between wait in the sockets' buffers
// instead of being refused. The caller closes the files. While the server
// still serves, read a file's descriptor with SyscallConn, not Fd: Fd puts
// the socket (shared with the server's) in blocking mode, and the server's
// readers would no longer stop at Close.
func (s *Server) Files() ([]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var files []*os.File
	for _, l := range s.nets {
		u, err := l.udp.File()
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("dns: socket of %v: %w", l.addr, err)
		}
		t, err := l.tcp.File()
		if err != nil {
			u.Close()
			closeFiles(files)
			return nil, fmt.Errorf("dns: socket of %v: %w", l.addr, err)
		}
		files = append(files, u, t)
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Inherited is a set of sockets handed over by the previous process (see
// Files). Its Listen serves an address from them, or opens new sockets.
type Inherited struct {
	fallback ListenFunc
	mu       sync.Mutex
	udp      map[netip.AddrPort]*net.UDPConn
	tcp      map[netip.AddrPort]*net.TCPListener
}

// Inherit takes files (closing them) and keeps the UDP sockets and TCP
// listeners among them by local address; other files are an error. Pass
// only the resolver's own files (from systemd, select them by the FDNAME
// they were stored with): CloseUnused closes every socket no network took.
// fallback (ListenFreebind when nil) opens the addresses not handed over.
func Inherit(files []*os.File, fallback ListenFunc) (*Inherited, error) {
	if fallback == nil {
		fallback = ListenFreebind
	}
	in := &Inherited{fallback: fallback, udp: map[netip.AddrPort]*net.UDPConn{}, tcp: map[netip.AddrPort]*net.TCPListener{}}
	var errs []error
	for _, f := range files {
		if err := in.add(f); err != nil {
			errs = append(errs, fmt.Errorf("dns: inherited file %s: %w", f.Name(), err))
		}
		f.Close()
	}
	return in, errors.Join(errs...)
}

func (in *Inherited) add(f *os.File) error {
	if pc, err := net.FilePacketConn(f); err == nil {
		u, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			return fmt.Errorf("not a UDP socket")
		}
		in.udp[u.LocalAddr().(*net.UDPAddr).AddrPort()] = u
		return nil
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("neither a UDP socket nor a listener: %w", err)
	}
	t, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return fmt.Errorf("not a TCP listener")
	}
	in.tcp[t.Addr().(*net.TCPAddr).AddrPort()] = t
	return nil
}

// Listen is a ListenFunc: the inherited pair for addr (each used once),
// else new sockets from the fallback.
func (in *Inherited) Listen(addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	in.mu.Lock()
	u, t := in.udp[addr], in.tcp[addr]
	delete(in.udp, addr)
	delete(in.tcp, addr)
	in.mu.Unlock()
	if u != nil && t != nil {
		return u, t, nil
	}
	if u != nil {
		u.Close()
	}
	if t != nil {
		t.Close()
	}
	return in.fallback(addr)
}

// CloseUnused closes the inherited sockets no network took (networks gone
// while the agent was down); call it once every network is set.
func (in *Inherited) CloseUnused() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for a, u := range in.udp {
		u.Close()
		delete(in.udp, a)
	}
	for a, t := range in.tcp {
		t.Close()
		delete(in.tcp, a)
	}
}
