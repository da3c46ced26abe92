// Package unixsock listens on a unix socket file the way a daemon should:
// its directory made, a stale socket left by a dead process replaced, a
// socket another live process serves refused, and the file's mode set
// before anyone can connect.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen listens on path with file mode perm (e.g. 0o600: root only).
func Listen(path string, perm os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s: another process serves it", path)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	// The umask makes the file with perm at once: a chmod after Listen
	// would leave a moment in which anyone could connect.
	old := syscall.Umask(int(^perm & 0o777))
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return l, nil
}
