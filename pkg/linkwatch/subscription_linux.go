package linkwatch

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// updateBuffer is how many updates netlink's reader may queue ahead of
// Run, on top of the socket's receive buffer.
const updateBuffer = 256

// subscription is one netlink link subscription and the two goroutines
// netlink starts for it: the reader, which closes updates when it ends (on
// any receive error, ENOBUFS included, or when done closes the socket),
// and the closer, which closes the socket when done is closed.
type subscription struct {
	updates chan netlink.LinkUpdate
	done    chan struct{}
	// errs wakes Run after the error callback ran.
	errs    chan struct{}
	closing atomic.Bool
	started time.Time
	once    sync.Once
}

// subscribe starts a subscription in ns with its initial listing.
func (w *Watcher) subscribe(ns netns.NsHandle) (*subscription, error) {
	s := &subscription{
		updates: make(chan netlink.LinkUpdate, updateBuffer),
		done:    make(chan struct{}),
		errs:    make(chan struct{}, 1),
		started: time.Now(),
	}
	err := netlink.LinkSubscribeWithOptions(s.updates, s.done, netlink.LinkSubscribeOptions{
		Namespace:         &ns,
		ErrorCallback:     func(err error) { w.subscriptionError(s, err) },
		ListExisting:      true,
		ReceiveBufferSize: w.opts.ReceiveBufferSize,
	})
	if err != nil {
		// netlink may have started the closer (and kept the socket open)
		// before failing; the reader is not running.
		s.closing.Store(true)
		close(s.done)
		return nil, err
	}
	return s, nil
}

// subscriptionError runs on netlink's reader goroutine: it must not block.
func (w *Watcher) subscriptionError(s *subscription, err error) {
	if s.closing.Load() {
		return // the socket closed under the reader: our own stop
	}
	w.stats.errors.Add(1)
	// netlink formats the errno into the message (%v, not %w), so
	// errors.Is cannot see it.
	if strings.Contains(err.Error(), unix.ENOBUFS.Error()) {
		w.stats.overruns.Add(1)
		w.log.Warn("link events overran the netlink socket; resyncing", "error", err)
	} else {
		w.log.Warn("link subscription reported an error; resyncing", "error", err)
	}
	select {
	case s.errs <- struct{}{}:
	default:
	}
}

// stop closes the socket and waits until netlink's reader has ended; it is
// idempotent. netlink's closer goroutine ends right after done is closed;
// it has no handle to wait on.
func (s *subscription) stop() {
	s.once.Do(func() {
		s.closing.Store(true)
		close(s.done)
		for range s.updates {
		}
	})
}
