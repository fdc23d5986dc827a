// Package jobapi is the agent API of capture jobs: the paths, headers and
// bodies the console serves (pkg/console) and the agent's job runner
// (pkg/jobrunner) and poller (pkg/poller) use. All bodies are JSON; an
// error answer is {"error": "one sentence"}.
package jobapi

import (
	"fmt"
	"strconv"
	"time"
)

// Paths of the agent API (mTLS: the device is the client certificate's).
// {id} is the job id.
const (
	// ClaimPath: POST a ClaimRequest; 200 AgentJob (accepted), 409 claimed
	// by another claim, 410 run ended, 404 no run.
	ClaimPath = "/api/v1/agent/jobs/{id}/claim"
	// ProgressPath: POST a ProgressRequest; 200 RunControl.
	ProgressPath = "/api/v1/agent/jobs/{id}/progress"
	// RunPath: GET, the cancel check; 200 RunControl.
	RunPath = "/api/v1/agent/jobs/{id}"
	// FinishPath: POST a FinishRequest; 200 RunControl.
	FinishPath = "/api/v1/agent/jobs/{id}/finish"
	// PcapPath: HEAD and PATCH, the resumable upload of the result.
	PcapPath = "/api/v1/agent/jobs/{id}/pcap"
	// LivePath: POST, a chunked pcapng stream of the run as it is
	// captured; 204 when the body ends.
	LivePath = "/api/v1/agent/jobs/{id}/live"
)

// Path fills {id} of one of the paths.
func Path(p string, id int64) string {
	for i := 0; i+4 <= len(p); i++ {
		if p[i:i+4] == "{id}" {
			return p[:i] + strconv.FormatInt(id, 10) + p[i+4:]
		}
	}
	return p
}

// Headers of the resumable upload (PcapPath).
const (
	// HeaderOffset: in a PATCH, where its body starts in the file; in an
	// answer, how many bytes the console holds.
	HeaderOffset = "Upload-Offset"
	// HeaderLength: the file's whole size (PATCH).
	HeaderLength = "Upload-Length"
	// HeaderSHA256: the hex SHA-256 of the whole file (PATCH).
	HeaderSHA256 = "Upload-SHA256"
	// HeaderComplete: "?1" once the result is stored, "?0" before.
	HeaderComplete = "Upload-Complete"
	// UploadContentType is the PATCH body's Content-Type.
	UploadContentType = "application/offset+octet-stream"
)

// UploadSlack is how far a result may exceed its job's MaxBytes (the
// closing statistics blocks).
const UploadSlack = 1 << 20

// The destinations of a job's result.
const (
	// DestinationConsole stores the result in the console's data
	// directory, uploaded through PcapPath.
	DestinationConsole = "console"
)

// AgentJob is a run of the device as its long poll and a claim return
// it: the job's spec and the run's state.
type AgentJob struct {
	ID              int64     `json:"id"`
	State           string    `json:"state"`
	Claim           string    `json:"claim"`
	CreatedAt       time.Time `json:"created_at"`
	ExpiresAt       time.Time `json:"expires_at"`
	CancelRequested bool      `json:"cancel_requested"`
	Interfaces      []string  `json:"interfaces"`
	Filter          string    `json:"filter"`
	SnapLen         uint32    `json:"snaplen"`
	Duration        Duration  `json:"duration"`
	MaxPackets      uint64    `json:"max_packets"`
	MaxBytes        uint64    `json:"max_bytes"`
	Destination     string    `json:"destination"`
}

// ClaimRequest is the body of POST ClaimPath.
type ClaimRequest struct {
	// Claim is random (128 bits, hex), one per agent attempt at the run:
	// a retry after a timeout sends the same one.
	Claim string `json:"claim"`
}

// Progress is what a run has written so far.
type Progress struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
	Size    uint64 `json:"size"`
}

// ProgressRequest is the body of POST ProgressPath.
type ProgressRequest struct {
	Claim string `json:"claim"`
	// State is "" (progress only), "running" or "uploading".
	State string `json:"state,omitempty"`
	Progress
}

// FinishRequest is the body of POST FinishPath.
type FinishRequest struct {
	Claim string `json:"claim"`
	// State is "finished", "failed" or "canceled".
	State string `json:"state"`
	// Error is the reason of failed and canceled.
	Error string `json:"error,omitempty"`
	Progress
	// Result is where the agent delivered the result itself (an S3
	// destination); nil for the console's destination, whose upload the
	// console records.
	Result *Result `json:"result,omitempty"`
}

// Result is a result the agent delivered: its object's URL, size and
// SHA-256.
type Result struct {
	// Location is s3://BUCKET/KEY, under the job's destination.
	Location string `json:"location"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// RunControl is the console's answer to progress, finish and the cancel
// check.
type RunControl struct {
	State           string `json:"state"`
	CancelRequested bool   `json:"cancel_requested"`
	// LiveWanted: a client waits for the run's live stream; the agent
	// pushes it to LivePath.
	LiveWanted bool `json:"live_wanted"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Duration is a time.Duration that is a Go duration string in JSON
// ("1m0s"); a number is taken as nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as "1m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON reads "1m0s" or nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return fmt.Errorf("duration %s: %w", b, err)
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: give one such as 60s or 5m", s)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: give one such as \"60s\"", b)
	}
	*d = Duration(n)
	return nil
}
