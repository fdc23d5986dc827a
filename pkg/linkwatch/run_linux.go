package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// resubscribeMin and resubscribeMax bound the wait before subscribing
	// again.
	resubscribeMin = 10 * time.Millisecond
	resubscribeMax = time.Second
	// healthyAfter is how long a subscription must have lived for the
	// backoff to start over when it ends.
	healthyAfter = 5 * time.Second
	// maxResubscribe is how many attempts in a row may fail before Run
	// gives up.
	maxResubscribe = 10
	// dumpAttempts is how many interrupted dumps in a row are retried at
	// once; after that the next dump is in retryDump.
	dumpAttempts = 3
	retryDump    = time.Second
)

// Run watches the namespace until ctx is done and returns nil then. It
// returns an error if it cannot open the namespace or subscribe at first,
// or cannot subscribe again after maxResubscribe attempts.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.running.Store(false)
	if ctx.Err() != nil {
		return nil
	}
	at := where(w.opts.NetNS)
	ns := netns.None()
	if w.opts.NetNS != "" {
		h, err := netns.GetFromPath(w.opts.NetNS)
		if err != nil {
			return fmt.Errorf("subscribe to link events in %s: open network namespace: %w", at, err)
		}
		defer h.Close()
		ns = h
	}
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("subscribe to link events in %s: open netlink handle: %w", at, err)
	}
	defer nh.Close()

	sub, err := w.subscribe(ns)
	if err != nil {
		w.stats.errors.Add(1)
		return fmt.Errorf("subscribe to link events in %s: %w", at, err)
	}
	defer func() {
		if sub != nil {
			sub.stop()
		}
	}()
	w.log.Debug("watching links")

	var retry <-chan time.Time
	resync := func(reason string) {
		retry = nil
		if !w.resync(nh, reason) {
			retry = time.After(retryDump)
		}
	}
	resync("first dump")

	tick := time.NewTicker(w.opts.Resync)
	defer tick.Stop()
	bo := backoff{min: resubscribeMin, max: resubscribeMax}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-sub.updates:
			if ok {
				w.apply(u)
				continue
			}
			lived := time.Since(sub.started)
			sub.stop()
			sub = nil
			if lived >= healthyAfter {
				bo.reset()
			}
			sub, err = w.resubscribe(ctx, ns, &bo)
			if err != nil {
				return err
			}
			if sub == nil {
				return nil // ctx done
			}
			resync("resubscribed")
		case <-sub.errs:
			resync("subscription error")
		case <-tick.C:
			resync("periodic")
		case <-retry:
			resync("retry")
		}
	}
}

// resubscribe subscribes again after a backoff. It returns nil, nil when
// ctx ends first.
func (w *Watcher) resubscribe(ctx context.Context, ns netns.NsHandle, bo *backoff) (*subscription, error) {
	var last error
	for range maxResubscribe {
		d := bo.next()
		w.log.Debug("link subscription ended; subscribing again", "after", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		s, err := w.subscribe(ns)
		if err == nil {
			return s, nil
		}
		w.stats.errors.Add(1)
		w.log.Warn("subscribe to link events", "error", err)
		last = err
	}
	return nil, fmt.Errorf("subscribe to link events in %s again (%d attempts): %w",
		where(w.opts.NetNS), maxResubscribe, last)
}

// apply applies one update from the subscription.
func (w *Watcher) apply(u netlink.LinkUpdate) {
	defer func() {
		w.stats.events.Add(1)
		if w.onApplied != nil {
			w.onApplied(u.Attrs().Alias)
		}
	}()
	if u.Family == unix.AF_BRIDGE {
		// Bridge port state, sent to the link group too; its RTM_DELLINK
		// means "left the bridge", not "deleted".
		return
	}
	switch u.Header.Type {
	case unix.RTM_NEWLINK:
		l := fromNetlink(u.Link)
		if w.set(l) {
			w.log.Debug("link changed", "link", l.Name, "index", l.Index, "up", l.Up, "mtu", l.MTU)
		}
	case unix.RTM_DELLINK:
		if w.remove(int(u.Index)) {
			w.log.Debug("link removed", "index", u.Index, "link", u.Link.Attrs().Name)
		}
	}
}

// resync replaces the view with a full dump and reports whether it got
// one. A dump interrupted by a concurrent change is retried.
func (w *Watcher) resync(h *netlink.Handle, reason string) bool {
	var err error
	for range dumpAttempts {
		var nls []netlink.Link
		nls, err = h.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			break
		}
		links := make([]Link, 0, len(nls))
		for _, nl := range nls {
			links = append(links, fromNetlink(nl))
		}
		w.stats.resyncs.Add(1) // before the view changes, for observers
		d := w.replace(links)
		if !d.empty() && reason != "first dump" {
			w.log.Info("resync corrected the link view", "reason", reason,
				"added", d.Added, "removed", d.Removed, "changed", d.Changed)
		} else {
			w.log.Debug("resynced links", "reason", reason, "links", len(links))
		}
		return true
	}
	w.stats.errors.Add(1)
	w.log.Warn("dump links; retrying", "reason", reason, "in", retryDump, "error", err)
	return false
}

func fromNetlink(l netlink.Link) Link {
	a := l.Attrs()
	return Link{
		Name:      a.Name,
		Index:     a.Index,
		Up:        a.Flags&net.FlagUp != 0,
		EncapType: a.EncapType,
		MTU:       a.MTU,
	}
}
