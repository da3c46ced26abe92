package main

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/attach"
)

// attachKind is the allocation owner kind of attach's interfaces
// (attach.Owner("attach", container, ifname)).
const attachKind = "attach"

// releaseLeftAllocations gives back the agent's allocations of the
// container's interface (all of its interfaces with --all) that no port
// claims: those of an attach killed between its allocation and its port,
// which would otherwise hold their address until they expire (2 minutes).
// An allocation a port claims ends with the port. It is best effort:
// without the agent detach works as before, and says so with -v. It
// returns the released addresses ("network/ip").
func (d detachArgs) releaseLeftAllocations(ctx context.Context, id string, stderr io.Writer) []string {
	log := d.logger(stderr)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client := agentapi.NewClient(d.agentSocket)
	l, err := client.Allocations(ctx, "", attach.Owner(attachKind, id, ""))
	if err != nil {
		log.Debug("not asking the agent for allocations left by an unfinished attach", "err", err)
		return nil
	}
	var released []string
	for _, a := range l {
		i := strings.LastIndexByte(a.Owner, '/')
		if a.Port != "" || a.Owner[:i+1] != attach.Owner(attachKind, id, "") || !d.all && a.Owner[i+1:] != d.ifname {
			continue
		}
		if err := client.Release(ctx, agentapi.ReleaseRequest{Network: a.Network, IP: a.IP, Owner: a.Owner}); err != nil {
			log.Warn("releasing an allocation left by an unfinished attach failed (it expires in the agent)", "owner", a.Owner, "ip", a.IP, "err", err)
			continue
		}
		log.Info("released the allocation of an unfinished attach", "owner", a.Owner, "network", a.Network, "ip", a.IP)
		released = append(released, a.Network+"/"+a.IP.String())
	}
	return released
}
