// Package agent runs the components of `ringtap agent` under a supervisor
// and serves their state over HTTP.
//
// What it promises:
//
//   - Tree runs each Component in its own goroutine. A component that
//     returns an error, returns before its context is done, or panics is
//     logged (a panic with its value and stack), counted, and run again
//     after an exponential backoff with jitter, its own, so that the other
//     components keep running undisturbed. A component that stays up for
//     TreeOptions.StableAfter starts its backoff afresh.
//   - Tree.Run returns only after every component returned, or after
//     TreeOptions.StopTimeout, with an error naming those that did not stop
//     in time (and those that returned an error while stopping).
//   - Main is the two-step stop of `ringtap agent`: the first SIGINT or
//     SIGTERM (or Stop, or the parent context) stops the tree gracefully;
//     the second returns at once, not clean. SIGHUP calls the Reload hook,
//     one call at a time. After the tree stopped, the shutdown hook runs
//     with a timeout and RINGTAP_SHUTDOWN_CLEAN=1 or 0.
//   - HTTPServer is a Component serving /metrics (Prometheus text),
//     /healthz, /readyz, /status.json and, when asked, /debug/pprof/. The
//     metric names and their meaning are listed in one place, MetricsTable.
//
// A panic in a goroutine a component started itself cannot be recovered
// by the supervisor and ends the process, as in any Go program: a
// component owns its goroutines and must recover in them where it wants
// to survive.
package agent
