package netfilter

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/google/nftables"
)

// Run keeps the kernel equal to the rules until ctx ends. The kernel's
// nftables monitor reports every change; a change made by another process
// to the agent's table, to table ip filter (DOCKER-USER) or to any set's
// elements is compared and repaired at once. Everything is also compared
// every ResyncPeriod (every second after a failure or while an interface
// is missing), and whenever the monitor had to be restarted (it lost
// events). Run does nothing before the first Apply.
func (k *Keeper) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		start := time.Now()
		mon, events, err := k.monitor()
		if err != nil {
			k.log.Warn("netfilter: nftables monitor unavailable; comparing periodically", "err", err)
		}
		k.watch(ctx, events)
		if mon != nil {
			_ = mon.Close()
			go func() { // let the monitor's goroutine finish its last send
				for range events {
				}
			}()
		}
		select { // a monitor that keeps failing is retried once a second
		case <-ctx.Done():
		case <-time.After(retryPeriod - time.Since(start)):
		}
	}
	return nil
}

// monitor subscribes to the kept namespace's nftables changes.
func (k *Keeper) monitor() (*nftables.Monitor, chan *nftables.MonitorEvents, error) {
	c, err := k.conn()
	if err != nil {
		return nil, nil, err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(256))
	events, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, nil, err
	}
	return mon, events, nil
}

// watch syncs on relevant events and on a timer; it returns when ctx ends,
// when the monitor stops (events closed), or, without a monitor (nil
// events), after one timed sync so that Run tries the monitor again.
func (k *Keeper) watch(ctx context.Context, events chan *nftables.MonitorEvents) {
	k.resync() // catch up with what happened before the monitor started
	timer := time.NewTimer(k.nextCheck())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			relevant := k.relevant(ev)
			for queued := len(events); queued > 0; queued-- { // one sync for a burst
				if ev, ok := <-events; ok {
					relevant = relevant || k.relevant(ev)
				}
			}
			if relevant {
				k.resync()
			}
		case <-timer.C:
			k.resync()
			if events == nil {
				return
			}
			timer.Reset(k.nextCheck())
		}
	}
}

// resync compares and repairs, logging a failure when it differs from the
// previous one.
func (k *Keeper) resync() {
	k.mu.Lock()
	defer k.mu.Unlock()
	last := k.status.LastError
	if err := k.syncLocked(true); err != nil && err.Error() != last {
		k.log.Warn("netfilter: sync failed; retrying", "err", err)
	}
}

// nextCheck is the wait before the next timed comparison.
func (k *Keeper) nextCheck() time.Duration {
	s := k.Status()
	if !s.InSync || len(s.ForwardingMissing) > 0 {
		return retryPeriod
	}
	return k.opt.ResyncPeriod
}

// relevant reports whether a transaction of another process may have
// changed what the Keeper keeps.
func (k *Keeper) relevant(ev *nftables.MonitorEvents) bool {
	if ev.GeneratedBy == nil || ev.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
		return true // the monitor failed: it stops and Run compares everything
	}
	if g, ok := ev.GeneratedBy.Data.(*nftables.GenMsg); ok && g != nil && ownThread(g.ProcPID) {
		return false // our own batch
	}
	for _, c := range ev.Changes {
		var t *nftables.Table
		switch d := c.Data.(type) {
		case *nftables.Table:
			t = d
		case *nftables.Chain:
			t = d.Table
		case *nftables.Rule:
			t = d.Table
		case *nftables.Set:
			t = d.Table
		default: // set elements carry no table; unparsable changes
			return true
		}
		if t == nil || t.Family == nftables.TableFamilyIPv4 && (t.Name == k.opt.Table || t.Name == dockerTable) {
			return true
		}
	}
	return false
}

// ownThread reports whether tid is a thread of this process: the kernel
// names the thread that made an nftables transaction, not its process.
func ownThread(tid uint32) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}
