package netnsrun

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// lockAndMake makes a new network namespace on a locked thread that dies
// with its goroutine (never reused in it) and sends a handle to it, or -1.
func lockAndMake(out chan<- netns.NsHandle) {
	runtime.LockOSThread()
	h, err := netns.New()
	if err != nil {
		out <- -1
		return
	}
	out <- h
}
