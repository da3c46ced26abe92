package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// The resolver's sockets across an agent restart under systemd: when the
// agent stops it hands duplicates of them to systemd's file descriptor
// store (sd_notify FDSTORE=1, FDNAME=dns; the unit sets
// FileDescriptorStoreMax=), and the next agent gets them back in
// LISTEN_FDS and serves them (resolver.Inherit). Queries sent meanwhile
// wait in the sockets' buffers instead of being refused (docs/dns.md).

// dnsFDName names the resolver's sockets in the store.
const dnsFDName = "dns"

// listenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// inheritedDNS returns the descriptors systemd passed to this process
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) under the name dns, numbered
// from first; nil when there are none.
func inheritedDNS(getenv func(string) string, pid, first int) []*os.File {
	if getenv("LISTEN_PID") != strconv.Itoa(pid) {
		return nil
	}
	n, err := strconv.Atoi(getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(getenv("LISTEN_FDNAMES"), ":")
	var out []*os.File
	for i := range n {
		if i < len(names) && names[i] == dnsFDName {
			syscall.CloseOnExec(first + i)
			out = append(out, os.NewFile(uintptr(first+i), dnsFDName))
		}
	}
	return out
}

// inheritDNS makes cfg serve the sockets systemd handed over, if any; the
// returned Inherited's CloseUnused closes those no network took.
func inheritDNS(cfg *resolver.Config, log *slog.Logger) *resolver.Inherited {
	files := inheritedDNS(os.Getenv, os.Getpid(), listenFDsStart)
	if len(files) == 0 {
		return nil
	}
	in, err := resolver.Inherit(files, cfg.Listen)
	if err != nil {
		log.Warn("dns: some sockets handed over by systemd are unusable (new ones are opened)", "err", err)
	}
	log.Info("dns: serving the sockets the previous agent left with systemd", "files", len(files))
	cfg.Listen = in.Listen
	return in
}

// closeUnusedOnReady closes the inherited sockets no network took once the
// agent is ready (its first view has set every network), or ctx ends.
func closeUnusedOnReady(ctx context.Context, in *resolver.Inherited, ag *agent.Agent) {
	if in == nil {
		return
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for !ag.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		in.CloseUnused()
	}()
}

// storeDNS hands duplicates of the resolver's sockets to systemd's file
// descriptor store, replacing what an earlier run stored: a no-op without
// NOTIFY_SOCKET (not under systemd).
func storeDNS(srv *resolver.Server, log *slog.Logger) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if srv == nil || sock == "" {
		return
	}
	files, err := srv.Files()
	if err != nil {
		log.Warn("dns: cannot hand the sockets to systemd: queries during the restart are refused", "err", err)
		return
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err := sdNotifyFiles(sock, "FDSTOREREMOVE=1\nFDNAME="+dnsFDName, nil); err != nil {
		log.Warn("dns: sd_notify FDSTOREREMOVE", "err", err)
	}
	if len(files) == 0 {
		return
	}
	if err := sdNotifyFiles(sock, "FDSTORE=1\nFDNAME="+dnsFDName, files); err != nil {
		log.Warn("dns: cannot hand the sockets to systemd (FileDescriptorStoreMax= in the unit?): queries during the restart are refused", "err", err)
		return
	}
	log.Info("dns: sockets handed to systemd for the next agent", "files", len(files))
}

// sdNotifyFiles sends state and files to the notify socket
// (sd_pid_notify_with_fds).
func sdNotifyFiles(sock, state string, files []*os.File) error {
	if sock[0] == '@' {
		sock = "\x00" + sock[1:]
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			// Not f.Fd(): it would put the socket, shared with the server
			// still reading it, in blocking mode, and its readers would no
			// longer see deadlines (Server.Close would hang).
			rc, err := f.SyscallConn()
			if err != nil {
				return err
			}
			if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
				return err
			}
		}
		oob = syscall.UnixRights(fds...)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Sendmsg(fd, []byte(state), oob, &syscall.SockaddrUnix{Name: sock}, 0); err != nil {
		return fmt.Errorf("notify socket %s: %w", strings.TrimPrefix(sock, "\x00"), err)
	}
	return nil
}
