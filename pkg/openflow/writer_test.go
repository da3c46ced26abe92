package openflow

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestWriterDropsIdleBuffers: after a large batch the writer keeps its
// buffers while it is busy, and drops them once it has been idle.
func TestWriterDropsIdleBuffers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := newWriter(a, 1<<20, 10*time.Second)
	w.idle = 50 * time.Millisecond
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- w.run(quit) }()
	msg := make([]byte, 512<<10)
	for range 3 {
		if err := w.enqueue(msg, false, quit); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, make([]byte, len(msg))); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return cap(w.pending) + cap(w.spare)
	}
	deadline := time.Now().Add(10 * time.Second)
	for held() > 2*keepIdle && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := held(); n > 2*keepIdle {
		t.Fatalf("idle writer holds %d bytes of buffers", n)
	}
	// It still writes after dropping them.
	if err := w.enqueue([]byte("ok"), false, quit); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "ok" {
		t.Fatalf("after the release: %q %v", got, err)
	}
	close(quit)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
