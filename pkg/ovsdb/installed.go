package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// ErrInterfaceGone: the interface left the bridge while WaitInstalled
// waited for it.
var ErrInterfaceGone = errors.New("interface removed from the bridge")

// RefusedError is the reason the agent gave (external_ids:ofctl-agent.error)
// for not programming an interface.
type RefusedError struct {
	Interface, Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the agent refuses interface %s: %s", e.Interface, e.Reason)
}

// WaitInstalled waits until the agent has installed the flows of the
// endpoint on interface iface for address ip: its
// external_ids:ofctl-agent.installed equals ip (see pkg/endpoint). It
// returns a *RefusedError as soon as the agent writes why it does not
// program the interface, ErrInterfaceGone (wrapped) if the interface leaves
// the bridge after it was seen, and ctx's error (wrapped) when ctx ends
// first. It follows the client's monitor (Subscribe): no polling.
func (c *Client) WaitInstalled(ctx context.Context, iface string, ip netip.Addr) error {
	select {
	case <-c.Synced():
	case <-ctx.Done():
		return fmt.Errorf("interface %s: %w: %w", iface, ErrNotConnected, ctx.Err())
	}
	sub := c.Subscribe()
	defer sub.Close()
	return watchInstalled(ctx, sub, iface, ip)
}

// watchInstalled is WaitInstalled on a subscription: its first batch is
// the interfaces on the bridge when it was made.
func watchInstalled(ctx context.Context, sub *Subscription, iface string, ip netip.Addr) error {
	seen, present := false, false
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("interface %s: not installed: %w", iface, ctx.Err())
		case batch, ok := <-sub.C():
			if !ok {
				return fmt.Errorf("interface %s: %w", iface, ErrClosed)
			}
			for _, ev := range batch {
				if ev.Interface.Name != iface {
					continue
				}
				if present = ev.Kind != Deleted; !present {
					continue // perhaps replaced by a row of the same name, later in the batch
				}
				seen = true
				if done, err := installedYet(iface, ip, ev.Interface.ExternalIDs); done {
					return err
				}
			}
			if seen && !present {
				return fmt.Errorf("interface %s: %w", iface, ErrInterfaceGone)
			}
		}
	}
}

// installedYet says whether an interface's external_ids settle the wait:
// installed for ip (nil), or refused.
func installedYet(iface string, ip netip.Addr, ext map[string]string) (bool, error) {
	st := endpoint.StatusOf(ext)
	switch {
	case st.Installed == ip.String() && ext[endpoint.KeyIP] == ip.String():
		return true, nil
	case st.Error != "":
		return true, &RefusedError{Interface: iface, Reason: st.Error}
	}
	return false, nil
}
