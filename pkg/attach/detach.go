package attach

import (
	"context"
	"errors"
	"fmt"
)

// Detach removes the OVS port and the veth of interface ifname of a
// container (deleting the host end deletes the pair, wherever the other end
// is). It also removes a veth an interrupted Attach left without a port. It
// returns ErrNotAttached (wrapped) when there is neither.
func (a *Attacher) Detach(ctx context.Context, containerID, ifname string) error {
	if err := validIfName(ifname); err != nil {
		return &OptionError{"ifname", ifname, err.Error()}
	}
	ports, err := a.Ports.Ports(ctx)
	if err != nil {
		return fmt.Errorf("list bridge ports: %w", err)
	}
	host := HostIfName(containerID, ifname)
	p, ok, err := findPort(ports, a.owner(), containerID, ifname, host)
	if err != nil {
		return err
	}
	if ok {
		return a.remove(ctx, p.Name)
	}
	err = a.links().DeleteVeth(a.HostNS, host)
	if errors.Is(err, ErrLinkNotFound) {
		return fmt.Errorf("%s of %s: %w", ifname, containerID, ErrNotAttached)
	}
	if err != nil {
		return fmt.Errorf("detach %s of %s: %w", ifname, containerID, err)
	}
	a.log().Info("removed leftover veth", "host_if", host, "container", containerID, "ifname", ifname)
	return nil
}

// DetachAll removes every port Attach made for the container and returns
// their names. Nothing to remove is not an error.
func (a *Attacher) DetachAll(ctx context.Context, containerID string) ([]string, error) {
	ports, err := a.Ports.Ports(ctx)
	if err != nil {
		return nil, fmt.Errorf("list bridge ports: %w", err)
	}
	var removed []string
	var errs []error
	for _, p := range ports {
		if p.owner() != a.owner() || p.containerID() != containerID {
			continue
		}
		if err := a.remove(ctx, p.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p.Name)
	}
	return removed, errors.Join(errs...)
}

// remove deletes an attached port, then its veth (which may be gone already
// with its container).
func (a *Attacher) remove(ctx context.Context, port string) error {
	if err := a.Ports.DeletePort(ctx, port); err != nil {
		return fmt.Errorf("delete port %s: %w", port, err)
	}
	if err := ignoreNotFound(a.links().DeleteVeth(a.HostNS, port)); err != nil {
		return fmt.Errorf("delete veth %s: %w", port, err)
	}
	a.log().Info("detached", "port", port)
	return nil
}
