package store

import (
	"context"
	"errors"
	"time"
)

// Errors of the job store, besides ErrNotFound, ErrInvalid, ErrRevoked.
var (
	// ErrClaimed: the run was accepted by another claim (another attempt
	// of the agent, such as one before a restart).
	ErrClaimed = errors.New("run claimed by another attempt")
	// ErrRunEnded: the run is in a terminal state that the change would
	// leave (a claim of an expired run, progress of a canceled one).
	ErrRunEnded = errors.New("run has ended")
	// ErrBadTransition: the state change is not one a run makes (such as
	// running → accepted).
	ErrBadTransition = errors.New("not a transition a run makes")
	// ErrJobEnded: every run of the job has ended; nothing to cancel.
	ErrJobEnded = errors.New("job has ended")
)

// RunState is the state of one device's run of a job.
type RunState string

// The states of a run: queued → accepted → running → uploading →
// finished | failed | canceled | expired.
const (
	RunQueued    RunState = "queued"
	RunAccepted  RunState = "accepted"
	RunRunning   RunState = "running"
	RunUploading RunState = "uploading"
	RunFinished  RunState = "finished"
	RunFailed    RunState = "failed"
	RunCanceled  RunState = "canceled"
	RunExpired   RunState = "expired"
)

// Terminal reports whether a run in state s has ended.
func (s RunState) Terminal() bool {
	switch s {
	case RunFinished, RunFailed, RunCanceled, RunExpired:
		return true
	}
	return false
}

// Valid reports whether s is one of the states.
func (s RunState) Valid() bool {
	switch s {
	case RunQueued, RunAccepted, RunRunning, RunUploading, RunFinished, RunFailed, RunCanceled, RunExpired:
		return true
	}
	return false
}

// CanBecome reports whether a run in state s may move to next. A state
// never moves to itself here (UpdateRun treats "the same state again" as
// progress, or as an idempotent repeat of a terminal state).
//
//	queued    → accepted, canceled, expired
//	accepted  → running, uploading, failed, canceled
//	running   → uploading, finished, failed, canceled
//	uploading → finished, failed, canceled
func (s RunState) CanBecome(next RunState) bool {
	switch s {
	case RunQueued:
		return next == RunAccepted || next == RunCanceled || next == RunExpired
	case RunAccepted:
		return next == RunRunning || next == RunUploading || next == RunFailed || next == RunCanceled
	case RunRunning:
		return next == RunUploading || next == RunFinished || next == RunFailed || next == RunCanceled
	case RunUploading:
		return next == RunFinished || next == RunFailed || next == RunCanceled
	}
	return false
}

// JobSpec is what every run of a job captures, and where its result
// goes. The console checks it against its policy before CreateJob; the
// store only requires Interfaces and Destination.
type JobSpec struct {
	// Interfaces are captured together on each device, into one file.
	Interfaces []string `json:"interfaces"`
	// Filter is a tcpdump expression; empty captures every frame.
	Filter  string `json:"filter"`
	SnapLen uint32 `json:"snaplen"`
	// The stop conditions, whichever comes first; 0 is none (the console
	// always sets Duration and MaxBytes, from its policy when not asked).
	Duration   time.Duration `json:"duration"`
	MaxPackets uint64        `json:"max_packets"`
	// MaxBytes bounds the result file (pcapng bytes).
	MaxBytes uint64 `json:"max_bytes"`
	// Destination is "console" (the console's data directory) or an S3
	// URL, "s3://bucket/prefix/", uploaded by the agent's exporter.
	Destination string `json:"destination"`
}

// Job is a capture job: one spec, one run per target device.
type Job struct {
	// ID is assigned by CreateJob: 1, 2, 3, ... in creation order.
	ID        int64     `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt: a run still queued then becomes expired.
	ExpiresAt time.Time `json:"expires_at"`
	Spec      JobSpec   `json:"spec"`
	// CancelRequestedAt is when an admin canceled the job; zero if never.
	CancelRequestedAt time.Time `json:"cancel_requested_at"`
	// Runs, by device id.
	Runs []Run `json:"runs"`
}

// Run is one device's run of a job.
type Run struct {
	JobID  int64    `json:"job_id"`
	Device string   `json:"device"`
	State  RunState `json:"state"`
	// Claim is the token of the agent attempt that accepted the run; ""
	// while queued.
	Claim string `json:"claim"`
	// Progress: packets and bytes (of packet data) written to the
	// result, drops (ring, copy and write drops), the result file's
	// current size.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
	Size    uint64 `json:"size"`
	// Error is the reason of a failed (or canceled) run; "" otherwise.
	Error string `json:"error"`
	// UpdatedAt is the last transition or progress.
	UpdatedAt time.Time `json:"updated_at"`
	// Result is nil until an upload is stored (AttachResult).
	Result      *RunResult   `json:"result"`
	Transitions []Transition `json:"transitions"`
}

// Transition is one state change of a run.
type Transition struct {
	State  RunState  `json:"state"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// RunResult is where a run's pcap is.
type RunResult struct {
	// Location is "console" (stored under the console's data directory)
	// or the object's URL, "s3://bucket/key".
	Location string    `json:"location"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"` // hex
	StoredAt time.Time `json:"stored_at"`
}

// RunUpdate is a change an agent reports of its run.
type RunUpdate struct {
	// State is the next state, or "" (or the current state) for progress
	// only.
	State RunState
	// Progress; stored as given when State is not a repeat of a terminal
	// state.
	Packets, Bytes, Drops, Size uint64
	// Error is the reason, for failed and canceled.
	Error string
}

// DeviceRun is a run of a device with its job, for the device's long
// poll.
type DeviceRun struct {
	Job Job // Runs holds only this device's run
	Run Run
}

// ListJobsOptions pages ListJobs.
type ListJobsOptions struct {
	// Limit is the most jobs returned (100 when 0).
	Limit int
	// Before, when not 0, returns only jobs with an ID below it.
	Before int64
}

// Jobs are the capture jobs and their runs.
type Jobs interface {
	// CreateJob stores j with a new ID and one queued run per device of
	// devices (each with a transition to queued at j.CreatedAt), and
	// returns it. Every device must exist (ErrNotFound) and not be
	// revoked (ErrRevoked); the errors name the device. It increases the
	// JobsSeq of each device and wakes their WaitForChanges calls.
	CreateJob(ctx context.Context, j Job, devices []string) (Job, error)
	// GetJob returns the job with its runs (by device id), each run
	// with its transitions in order.
	GetJob(ctx context.Context, id int64) (Job, error)
	// ListJobs returns jobs newest first, with their runs.
	ListJobs(ctx context.Context, opts ListJobsOptions) ([]Job, error)
	// CancelJob requests the job's cancel at now: its queued runs become
	// canceled at once (reason "canceled before the device accepted
	// it"); its other live runs keep their state, and the agents see
	// CancelRequestedAt. A job whose runs have all ended is ErrJobEnded;
	// canceling twice keeps the first time. It increases the JobsSeq of
	// the devices with live runs and wakes them.
	CancelJob(ctx context.Context, id int64, now time.Time) (Job, error)
	// DeviceRuns returns the device's runs that have not ended (queued
	// runs past their job's expiry excluded), oldest job first.
	DeviceRuns(ctx context.Context, device string) ([]DeviceRun, error)
	// ClaimRun accepts the device's queued run of job id for claim, at
	// now, atomically: exactly one claim wins. Claiming again with the
	// same claim returns the run as it is (an agent retrying after a
	// timeout). A run accepted by another claim is ErrClaimed; a run
	// that ended, or is queued past its job's expiry, is ErrRunEnded.
	ClaimRun(ctx context.Context, id int64, device, claim string, now time.Time) (Run, error)
	// UpdateRun applies u to the device's run of job id for claim
	// (ErrClaimed for another claim): progress, and a transition when
	// u.State differs from the run's state (ErrBadTransition when the
	// state cannot become u.State). A terminal run given its own state
	// again is returned unchanged; given another, ErrRunEnded.
	UpdateRun(ctx context.Context, id int64, device, claim string, u RunUpdate, now time.Time) (Run, error)
	// AttachResult stores where the run's pcap is. Attaching the same
	// SHA256 again is a no-op; another is ErrExists. A run of any state
	// takes it (a run failed by the console, whose agent uploads later).
	AttachResult(ctx context.Context, id int64, device string, r RunResult) (Run, error)
	// ExpireRuns makes every queued run whose job expired by now
	// expired, and returns them.
	ExpireRuns(ctx context.Context, now time.Time) ([]Run, error)
	// FailSilentRuns makes every accepted, running or uploading run not
	// updated since cutoff failed with reason, at now, and returns them.
	FailSilentRuns(ctx context.Context, cutoff time.Time, reason string, now time.Time) ([]Run, error)
	// WaitForChanges returns the device's desired config as soon as its
	// Generation is above afterGen or its JobsSeq above afterJobs, as
	// WaitForChange does for the generation alone.
	WaitForChanges(ctx context.Context, device string, afterGen, afterJobs int64) (DesiredConfig, error)
}
