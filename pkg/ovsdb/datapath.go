package ovsdb

import (
	"context"
	"fmt"

	"github.com/ovn-org/libovsdb/client"
)

// DatapathType returns the datapath_type column of the client's bridge as
// the server holds it: "netdev" for the userspace datapath, "system" or ""
// (which ovs-vswitchd takes for "system") for the kernel's. It waits for a
// connection until ctx ends and returns ErrBridgeNotFound (wrapped) when the
// bridge does not exist.
func (c *Client) DatapathType(ctx context.Context) (string, error) {
	var dp string
	err := c.withConn(ctx, func(cl client.Client) error {
		r, err := readRows(ctx, cl, "")
		if err != nil {
			return err
		}
		br := r.bridge(c.cfg.Bridge.Name)
		if br == nil {
			return fmt.Errorf("%w: %s", ErrBridgeNotFound, c.cfg.Bridge.Name)
		}
		dp = br.DatapathType
		return nil
	})
	return dp, err
}
