package poller

import (
	"encoding/json"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
)

// The agent API's configuration and heartbeat endpoints, served by the
// console on its agent listener (mTLS).
const (
	// ConfigPath answers a Config: GET ConfigPath?after=GEN&jobs=SEQ&wait=30s
	// (jobs= only when the poller has a job runner: without it, the
	// console does not wait on jobs).
	ConfigPath = "/api/v1/agent/config"
	// HeartbeatPath takes a Heartbeat and answers 204.
	HeartbeatPath = "/api/v1/agent/heartbeat"
)

// MaxResponseSize bounds the body the poller reads from the console.
const MaxResponseSize = 1 << 20

// Config is the console's answer on ConfigPath: the device's desired
// captures at a generation, and its capture jobs' runs that have not
// ended at a jobs sequence number. Captures is kept as sent: it is
// checked by the agent's config parser, which names every mistake. Jobs
// is a list of jobapi.AgentJob, read one by one (one the poller cannot
// read is logged and left out, the others are handed on).
type Config struct {
	Generation int64           `json:"generation"`
	Captures   json.RawMessage `json:"captures"`
	JobsSeq    int64           `json:"jobs_seq"`
	Jobs       json.RawMessage `json:"jobs"`
}

// Heartbeat is the body of POST HeartbeatPath.
type Heartbeat struct {
	// AppliedGeneration is the generation of the config the agent runs;
	// -1 before it ever applied one.
	AppliedGeneration int64                 `json:"applied_generation"`
	Hostname          string                `json:"hostname"`
	AgentVersion      string                `json:"agent_version"`
	MachineID         string                `json:"machine_id"`
	Interfaces        []string              `json:"interfaces"`
	Captures          []agent.CaptureStatus `json:"captures"`
	// Errors are one sentence each: a rejected config, a capture's last
	// error (a filter the kernel refused, an unwritable directory), the
	// certificate's problem.
	Errors      []string             `json:"errors"`
	Certificate HeartbeatCertificate `json:"certificate"`
}

// HeartbeatCertificate is the state of the device's client certificate.
type HeartbeatCertificate struct {
	NotAfter      time.Time `json:"not_after"`
	NeedsReenroll bool      `json:"needs_reenroll"`
}

// CertificateStatus is what the poller reports of the certificate
// manager (see certmgr.Status).
type CertificateStatus struct {
	NotAfter      time.Time
	NeedsReenroll bool
	// Reason is why the certificate is not fine; "" when it is.
	Reason string
}
