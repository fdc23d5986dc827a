// Package pcapmgr is the agent's pcap manager: it holds the desired set of
// captures (interface × filter × output) and the running set, and
// reconciles them whenever the desired set (SetDesired, on start and on
// every reload) or the interfaces (a link watcher) change, and every few
// seconds.
//
// Promises:
//   - Level-triggered: applying the same desired set twice changes
//     nothing; a capture whose configuration is unchanged is never
//     touched, and one association never runs twice.
//   - A capture whose interface does not exist waits in state
//     waiting_for_interface and starts when it appears. One whose
//     interface goes away, is renamed away or is replaced by another under
//     its name is stopped cleanly (rings drained, file finished) and waits
//     again. Captures bind to interface names.
//   - A capture that fails to start or fails while running is retried
//     with exponential backoff (RetryMin to RetryMax); the others are not
//     affected.
//   - Each capture owns its recorder and, with export, its exporter, whose
//     goroutine it tracks and supervises: an exporter whose Run returns or
//     panics before its stop is logged, counted
//     (ringtap_export_restarts_total) and run again with backoff, and Ready
//     reports it meanwhile. Run's end stops every capture, finishes every
//     file and gives each exporter its upload grace (a backoff ends at
//     once).
//   - Counters reported by Captures are monotonic over a capture's life.
package pcapmgr
