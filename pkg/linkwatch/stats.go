package linkwatch

import "sync/atomic"

// Stats are a Watcher's counters since New.
type Stats struct {
	// Events counts link updates received from the subscription,
	// including the replies to its initial listing and duplicates.
	Events uint64
	// Resyncs counts completed full dumps: the first, the periodic ones
	// and those after errors.
	Resyncs uint64
	// Overruns counts ENOBUFS reports: the kernel dropped events because
	// the socket's receive buffer was full.
	Overruns uint64
	// Errors counts every error: those reported by the subscription
	// (overruns included), failed dumps and failed subscriptions.
	Errors uint64
}

type counters struct {
	events, resyncs, overruns, errors atomic.Uint64
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	return Stats{
		Events:   w.stats.events.Load(),
		Resyncs:  w.stats.resyncs.Load(),
		Overruns: w.stats.overruns.Load(),
		Errors:   w.stats.errors.Load(),
	}
}
