// Command ofctl-agent is the per-host OpenFlow 1.3 controller for an Open
// vSwitch integration bridge. Subcommands are added as the daemon lands; for
// now it reports its version.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: ofctl-agent version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintf(stdout, "ofctl-agent %s (%s)\n", version, goVersion())
		return 0
	default:
		fmt.Fprintf(stderr, "ofctl-agent: unknown command %q\n", args[0])
		return 2
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}
