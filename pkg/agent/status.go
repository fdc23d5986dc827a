package agent

import "time"

// Capture states, as in CaptureStatus.State.
const (
	CaptureStarting            = "starting"
	CaptureRunning             = "running"
	CaptureWaitingForInterface = "waiting_for_interface"
	CaptureStopping            = "stopping"
	CaptureFailed              = "failed"
)

// CaptureStatus is one configured capture as the pcap manager reports it.
// The counters are monotonic over the capture's life (the metric names
// they are exported under are in metrics.go).
type CaptureStatus struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	Hook      string `json:"hook"`
	// State is one of starting, running, waiting_for_interface, stopping
	// and failed.
	State string `json:"state"`

	Seen         uint64 `json:"seen"`          // frames the hook ran on
	Matched      uint64 `json:"matched"`       // frames the filter accepted
	Captured     uint64 `json:"captured"`      // records written to a ring
	RingDrops    uint64 `json:"ring_drops"`    // matched frames lost: ring full
	CopyFailures uint64 `json:"copy_failures"` // matched frames lost: copy into the ring failed
	Bytes        uint64 `json:"bytes"`         // captured frame bytes
	Written      uint64 `json:"written"`       // packets committed to files
	WriteDrops   uint64 `json:"write_drops"`   // packets not written
	Files        uint64 `json:"files"`         // files finished

	CurrentFile string    `json:"current_file,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	Since       time.Time `json:"since,omitzero"` // when State last changed
}

// StatusSource reports the configured captures; the pcap manager
// implements it. Captures is called at each scrape or status request, from
// any goroutine, and should return quickly.
type StatusSource interface {
	Captures() []CaptureStatus
}

// captureReady reports whether a capture's state counts as ready.
func captureReady(c CaptureStatus) bool {
	return c.State == CaptureRunning || c.State == CaptureWaitingForInterface
}
