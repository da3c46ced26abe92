// Command ofctl-cni is the CNI plugin of ofctl-agent (see pkg/cniplugin):
// install it into the runtime's CNI bin directory (/opt/cni/bin) and name
// it as "type": "ofctl-cni" in a network configuration list.
package main

import (
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ofctl-agent/ofctl-agent/pkg/cniplugin"
)

func main() {
	// CNI owns stdout (results and errors as JSON); logs go to stderr
	// (which runtimes keep only after a success) and to the conflist's
	// logFile (pkg/cniplugin, log.go).
	level := slog.LevelWarn
	if os.Getenv("OFCTL_CNI_DEBUG") != "" {
		level = slog.LevelDebug
	}
	p := &cniplugin.Plugin{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	skel.PluginMainFuncs(p.Funcs(), version.All, "ofctl-cni: CNI plugin of ofctl-agent (Open vSwitch)")
}
