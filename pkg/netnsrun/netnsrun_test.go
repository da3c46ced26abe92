package netnsrun

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

func TestPathHere(t *testing.T) {
	ran := false
	if err := Path("", func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("Path(\"\"): ran %v, err %v", ran, err)
	}
	want := errors.New("boom")
	if err := Path("", func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Path(\"\") error %v, want %v", err, want)
	}
}

func TestPathMissing(t *testing.T) {
	err := Path("/nonexistent/netns", func() error { t.Error("ran"); return nil })
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/netns") {
		t.Fatalf("err %v, want one naming the path", err)
	}
}

// TestNewNamespace enters a namespace made for the test and checks that the
// function ran in it and that the caller's thread did not move.
func TestNewNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	// A new namespace, made on a thread of its own.
	made := make(chan netns.NsHandle, 1)
	go lockAndMake(made)
	target := <-made
	if target == -1 {
		t.Fatal("could not make a namespace")
	}
	defer target.Close()
	want := target.UniqueId()
	if err := Handle(target, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if got := cur.UniqueId(); got != want {
			t.Errorf("in %s, want %s", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(here) {
		t.Error("the caller's namespace changed")
	}
}
