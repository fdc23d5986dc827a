package trafficgen

import "time"

// Result reports a LiveSender run.
type Result struct {
	// Sent counts the frames of BPF_PROG_RUN calls that completed: each is
	// a frame the XDP program returned XDP_TX for. The veth may still drop
	// some when the peer's ring is full (see the peer's counters). When a
	// call is interrupted by a signal the library restarts it from zero;
	// the frames the interrupted attempt had sent are not in Sent, so Sent
	// is a lower bound when Retries > 0, and exact otherwise.
	Sent uint64
	// Duration is the wall time of the run.
	Duration time.Duration
	// Retries counts interrupted and restarted calls. Run blocks
	// asynchronous signals on its thread, so it is normally 0.
	Retries int
}
