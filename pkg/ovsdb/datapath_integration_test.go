package ovsdb

import (
	"errors"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestDatapathType reads the bridge's datapath_type from the server, not
// from the client's configuration (which says "system" here).
func TestDatapathType(t *testing.T) {
	n := testbed.NewNode(t, "dptype")
	c, _ := startClient(t, n, func(cfg *Config) { cfg.Bridge.DatapathType = "system" })
	ctx := ctxT(t, 20*time.Second)
	if dp, err := c.DatapathType(ctx); !errors.Is(err, ErrBridgeNotFound) {
		t.Fatalf("no bridge: got %q, %v; want ErrBridgeNotFound", dp, err)
	}
	n.AddBridge(t, "br-int") // datapath_type=netdev, made by ovs-vsctl
	testbed.Eventually(t, 5*time.Second, func() bool {
		dp, err := c.DatapathType(ctx)
		return err == nil && dp == "netdev"
	}, "datapath_type netdev not reported")
}
