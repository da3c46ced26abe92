package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Scoped loading (Config.Scoped): the Source watches the hosts' and the
// networks' records (one range, baseSpan) and the claims of the networks
// of interest alone (SetInterest), one range read and one watch of
// claims/<network>/ each, started when the interest begins; when it ends
// the watch is cancelled and the network's claims leave the index. Each
// watch resumes from its own revision after an outage. A watch that falls
// behind a compaction lists its own range again, alone (relist): one range
// read of that network's claims, or of baseSpan, at the current revision,
// whose records replace those the index holds of the range (what was
// added, changed or deleted meanwhile comes out right, what did not change
// changes nothing downstream); the other watches go on. A fresh listing
// of every range would give the same view.

// span is a range of keys, [key, end).
type span struct{ key, end string }

// baseSpan holds what every host watches, whatever networks it uses:
// endpoints/ (the old layout, reported), hosts/ (records, and claims of
// the host layout) and networks/; claims/ sorts before it.
func (k keys) baseSpan() span {
	return span{k.prefix + "/" + dirEndpoints + "/", clientv3.GetPrefixRangeEnd(k.prefix + "/" + dirNetworks + "/")}
}

// claimSpan is one network's claims.
func (k keys) claimSpan(network string) span {
	p := k.claims(network)
	return span{p, clientv3.GetPrefixRangeEnd(p)}
}

// SetInterest sets the networks whose claims a scoped Source loads (the
// agent's networks in use); it never blocks. Views say which are in
// (cluster.View.Loaded). Names that cannot be networks are ignored.
func (s *Source) SetInterest(networks []string) {
	want := make(map[string]bool, len(networks))
	for _, n := range networks {
		if n != "" && !strings.Contains(n, "/") {
			want[n] = true
		}
	}
	s.mu.Lock()
	same := maps.Equal(want, s.interest)
	if !same {
		s.interest = want
	}
	s.mu.Unlock()
	if !same {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Source) interestSet() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.interest)
}

// scopedWatch is one watched range of a session.
type scopedWatch struct {
	network string // "" for the base span
	sp      span
	cancel  context.CancelFunc
	// behind: the watch fell behind a compaction and ended; its range is
	// to be listed again (session.catchUp), then watched by a new one.
	behind bool
}

// watchMsg is one response of a session's watch, or its end (err set).
type watchMsg struct {
	w    *scopedWatch
	resp clientv3.WatchResponse
	err  error // the watch ended: it is watched again from its revision
}

// session is one scoped listing and its watches, on Run's goroutine.
type session struct {
	s    *Source
	x    *index
	base *scopedWatch
	nets map[string]*scopedWatch // loaded networks
	msgs chan watchMsg
	max  int64 // the highest etcd revision applied
}

// runScoped is Run with Config.Scoped: one session, started again while
// its first listing fails.
func (s *Source) runScoped(ctx context.Context) error {
	go s.probe(ctx)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			break
		}
		s.setConnected(false, err)
		sleep(ctx, delay)
		delay = min(2*delay, 5*time.Second)
	}
	return nil
}

// session lists the base span and the networks of interest into a new
// index, publishes its view and follows the watches and the interest
// until ctx ends (nil); it ends early only when the first listing fails.
// A watch behind a compaction lists its own range again (catchUp).
func (s *Source) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // every watch of the session
	start := time.Now()
	x := newIndex(s.keys, s.cfg.Networks, s.cfg.OnReject)
	ss := &session{s: s, x: x, nets: map[string]*scopedWatch{}, msgs: make(chan watchMsg, 64)}
	ss.base = &scopedWatch{sp: s.keys.baseSpan()}
	rev, err := s.listSpan(sctx, x, ss.base.sp, true, nil)
	if err != nil {
		return err
	}
	ss.max = rev
	s.setConnected(true, nil)
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	if !ss.follow(sctx) {
		retry.Reset(time.Second)
	}
	x.resolve()
	ss.publish(true)
	ss.watch(sctx, ss.base, rev)
	n, h, c, old := x.counts()
	s.log.Info("etcd listed (scoped)", "revision", rev, "networks", n, "hosts", h, "endpoint_records", c,
		"old_layout_records", old, "loaded", len(ss.nets), "view_endpoints", x.endpoints.Len(), "took", time.Since(start))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-retry.C:
		case m := <-ss.msgs:
			if !ss.received(sctx, m) {
				retry.Reset(time.Second)
			}
			continue
		}
		if !ss.follow(sctx) {
			retry.Reset(time.Second)
		}
		if x.resolve() || ss.loadedChanged() {
			ss.publish(false)
		}
	}
}

// received applies a watch response and those queued behind it (at most
// maxCoalesce), lists again the ranges of those that fell behind a
// compaction, then publishes a changed view. It reports false when a
// range could not be listed again (retried).
func (ss *session) received(ctx context.Context, m watchMsg) bool {
	changed, behind := false, false
	for n := 0; ; n++ {
		if ss.current(m.w) {
			switch {
			case m.resp.CompactRevision != 0:
				ss.fellBehind(m.w, m.resp.CompactRevision)
				behind = true
			case m.err != nil:
				ss.s.setConnected(false, m.err)
			default:
				ss.s.setConnected(true, nil)
				changed = ss.s.apply(ss.x, m.resp.Events) || changed
				ss.max = max(ss.max, m.resp.Header.GetRevision())
			}
		}
		if n >= maxCoalesce || len(ss.msgs) == 0 {
			break
		}
		m = <-ss.msgs
	}
	ok := true
	if behind {
		var relisted bool
		relisted, ok = ss.catchUp(ctx)
		changed = changed || relisted
	}
	if changed && ss.x.resolve() {
		ss.publish(false)
	} else if changed {
		ss.s.counts(ss.x)
	}
	return ok
}

// current reports whether w is one of the session's live watches (a
// cancelled one's responses may still be queued).
func (ss *session) current(w *scopedWatch) bool {
	return !w.behind && (w == ss.base || w.network != "" && ss.nets[w.network] == w)
}

// fellBehind ends w, whose watch fell behind a compaction, and counts it:
// its range is to be listed again (catchUp).
func (ss *session) fellBehind(w *scopedWatch, compacted int64) {
	w.cancel()
	w.behind = true
	s := ss.s
	s.mu.Lock()
	if w.network == "" {
		s.state.BaseResyncs++
	} else {
		s.state.ClaimResyncs++
	}
	s.mu.Unlock()
	s.log.Warn("etcd watch fell behind a compaction; listing its range again", "range", w.what(),
		"compact_revision", compacted)
}

// what names w's range in log lines.
func (w *scopedWatch) what() string {
	if w.network == "" {
		return "hosts and networks"
	}
	return "claims of " + w.network
}

// catchUp lists again the range of each watch behind a compaction (the
// base first) and watches it from there. It reports whether any was
// listed (the index changed) and false in ok when one failed (retried).
func (ss *session) catchUp(ctx context.Context) (listed, ok bool) {
	ok = true
	ws := []*scopedWatch{ss.base}
	for _, n := range ss.loaded() {
		ws = append(ws, ss.nets[n])
	}
	for _, w := range ws {
		if !w.behind {
			continue
		}
		start := time.Now()
		rev, err := ss.s.relist(ctx, ss.x, w.sp)
		if err != nil {
			ss.s.log.Warn("etcd: cannot list a range again after a compaction; retrying", "range", w.what(), "err", err)
			ss.s.setConnected(false, err)
			ok = false
			continue
		}
		listed = true
		ss.max = max(ss.max, rev)
		nw := &scopedWatch{network: w.network, sp: w.sp}
		if w.network == "" {
			ss.base = nw
		} else {
			ss.nets[w.network] = nw
		}
		ss.watch(ctx, nw, rev)
		ss.s.log.Info("etcd: range listed again after a compaction", "range", w.what(), "revision", rev,
			"took", time.Since(start))
	}
	return listed, ok
}

// follow loads the networks of interest not loaded yet, drops those no
// longer of interest and lists again the ranges whose watch fell behind a
// compaction; it reports false when a load failed (retried).
func (ss *session) follow(ctx context.Context) bool {
	want := ss.s.interestSet()
	for _, n := range slices.Sorted(maps.Keys(ss.nets)) {
		if !want[n] {
			ss.nets[n].cancel()
			delete(ss.nets, n)
			ss.x.dropNetwork(n)
			ss.s.log.Debug("etcd: claims of a network no longer used dropped", "network", n)
		}
	}
	_, ok := ss.catchUp(ctx)
	for _, n := range slices.Sorted(maps.Keys(want)) {
		if ss.nets[n] != nil {
			continue
		}
		start := time.Now()
		w := &scopedWatch{network: n, sp: ss.s.keys.claimSpan(n)}
		rev, err := ss.s.listSpan(ctx, ss.x, w.sp, false, nil)
		if err != nil {
			ss.s.log.Warn("etcd: cannot load a network's claims; retrying", "network", n, "err", err)
			ss.s.setConnected(false, err)
			ok = false
			continue
		}
		ss.max = max(ss.max, rev)
		ss.nets[n] = w
		ss.watch(ctx, w, rev)
		ss.s.log.Debug("etcd: claims of a network loaded", "network", n, "revision", rev, "took", time.Since(start))
	}
	return ok
}

// loadedChanged reports whether the networks loaded differ from the view
// in force's.
func (ss *session) loadedChanged() bool {
	cur, _ := ss.s.Current()
	return !slices.Equal(cur.Loaded, ss.loaded())
}

func (ss *session) loaded() []string { return slices.Sorted(maps.Keys(ss.nets)) }

// publish offers the index's view with the networks loaded. Its revision
// is the highest etcd revision applied, or one more than the view before
// when that is not higher (a load at a revision already seen changes the
// view too).
func (ss *session) publish(listed bool) {
	cur, _ := ss.s.Current()
	ss.s.loadedNets = ss.loaded()
	ss.s.publish(ss.x, max(ss.max, cur.Revision+1), listed)
}

// watch follows w's range from after rev on a goroutine of its own,
// watching again from its last revision when the watch ends, until ctx
// (the session's) or w's own context ends.
func (ss *session) watch(ctx context.Context, w *scopedWatch, rev int64) {
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	if ss.s.beforeWatch != nil {
		ss.s.beforeWatch(rev)
	}
	go func() {
		delay := 100 * time.Millisecond
		for wctx.Err() == nil {
			if h := ss.s.beforeFollow; h != nil {
				h(w.network, rev)
			}
			err := ss.follow1(wctx, w, &rev)
			if wctx.Err() != nil {
				return
			}
			select {
			case ss.msgs <- watchMsg{w: w, err: err}:
			case <-wctx.Done():
				return
			}
			sleep(wctx, delay)
			delay = min(2*delay, 5*time.Second)
		}
	}()
}

// follow1 runs one etcd watch of w's range from after *rev, passing its
// responses on; it returns why it ended. A compaction is passed on, and
// the watch then waits for the session to end it (fellBehind).
func (ss *session) follow1(ctx context.Context, w *scopedWatch, rev *int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := ss.s.cfg.Client.Watch(wctx, w.sp.key, clientv3.WithRange(w.sp.end), clientv3.WithRev(*rev+1),
		clientv3.WithProgressNotify())
	for resp := range wch {
		bad := resp.Err() != nil && resp.CompactRevision == 0
		if !bad && resp.CompactRevision == 0 {
			*rev = max(*rev, resp.Header.GetRevision())
		}
		if bad {
			return resp.Err()
		}
		select {
		case ss.msgs <- watchMsg{w: w, resp: resp}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if resp.CompactRevision != 0 {
			<-ctx.Done() // fellBehind cancels it
			return ctx.Err()
		}
	}
	return errors.New("watch channel closed")
}

// listSpan reads one range at one revision into x (one range read, or
// pages with Config.PageSize) and returns the revision. Each key read is
// taken out of stale (may be nil).
func (s *Source) listSpan(ctx context.Context, x *index, sp span, first bool, stale map[string]struct{}) (int64, error) {
	key := sp.key
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(sp.end)}
		if s.cfg.PageSize > 0 {
			opts = append(opts, clientv3.WithLimit(s.cfg.PageSize))
		}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := s.cfg.Client.Get(pctx, key, opts...)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("etcd list %s: %w", sp.key, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			if first {
				x.expect(int(resp.Count))
			}
		}
		more := resp.More && len(resp.Kvs) > 0
		if more {
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		for i, kv := range resp.Kvs {
			delete(stale, string(kv.Key))
			x.put(string(kv.Key), kv.Value, kv.CreateRevision)
			resp.Kvs[i] = nil // indexed: the collector may take it
		}
		if !more {
			return rev, nil
		}
	}
}

// relist lists sp again into x, its watch having fallen behind a
// compaction: the records x holds of sp that the listing does not find
// were deleted meanwhile and are deleted from x; those it finds are put
// again (the index settles only what differs from the view). It returns
// the listing's revision; on an error x may hold some of the new records,
// and none is deleted.
func (s *Source) relist(ctx context.Context, x *index, sp span) (int64, error) {
	stale := x.held(sp)
	rev, err := s.listSpan(ctx, x, sp, false, stale)
	if err != nil {
		return 0, err
	}
	for key := range stale {
		x.del(key)
	}
	return rev, nil
}
