// Package netnsrun runs a function with its OS thread in another network
// namespace: sockets, netlink handles and /proc/sys/net files opened by the
// function belong to that namespace, and stay in it after it returns.
package netnsrun

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Path runs fn in the network namespace at path (a file such as
// /var/run/netns/NAME or /proc/PID/ns/net); with path "" it runs fn here.
func Path(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer target.Close()
	if err := Handle(target, fn); err != nil {
		return fmt.Errorf("in network namespace %s: %w", path, err)
	}
	return nil
}

// Handle runs fn on a fresh goroutine whose OS thread is locked and moved
// into namespace target, then moved back. If moving back fails the thread
// stays locked, and the Go runtime destroys it when the goroutine ends: no
// thread is ever reused in the wrong namespace.
func Handle(target netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			done <- errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
			return // thread stays locked: discarded at goroutine exit
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
