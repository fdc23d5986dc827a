// Package runs holds the rules of a job run's life that both backends
// apply inside their transactions, so that they cannot differ: what a
// job needs to be created, which claim of a run wins, and whether an
// update is a transition, progress only, or the idempotent repeat of a
// terminal state.
package runs

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// The reasons of the transitions the store makes by itself.
const (
	// CanceledQueued: CancelJob ended a run no device had accepted.
	CanceledQueued = "canceled before the device accepted it"
	// Expired: ExpireRuns ended a run still queued at its job's expiry.
	Expired = "no device accepted it before it expired"
)

// DefaultListLimit is ListJobs' limit when none is given.
const DefaultListLimit = 100

// Live are the states of a run that has not ended, for SQL IN lists.
const Live = `'queued', 'accepted', 'running', 'uploading'`

// Active are the states of a run an agent has accepted and not ended.
const Active = `'accepted', 'running', 'uploading'`

// CheckJob checks j and its devices for CreateJob and returns the devices
// each once, sorted (the order the backends lock them in, and the order
// of Job.Runs).
func CheckJob(j store.Job, devices []string) ([]string, error) {
	switch {
	case len(devices) == 0:
		return nil, fmt.Errorf("create job: give at least one device: %w", store.ErrInvalid)
	case len(j.Spec.Interfaces) == 0:
		return nil, fmt.Errorf("create job: give at least one interface: %w", store.ErrInvalid)
	case j.Spec.Destination == "":
		return nil, fmt.Errorf("create job: give a destination: %w", store.ErrInvalid)
	case j.CreatedAt.IsZero():
		return nil, fmt.Errorf("create job: give its creation time: %w", store.ErrInvalid)
	case j.Spec.Duration < 0:
		return nil, fmt.Errorf("create job: duration %v is negative: %w", j.Spec.Duration, store.ErrInvalid)
	case j.Spec.MaxPackets > math.MaxInt64 || j.Spec.MaxBytes > math.MaxInt64:
		return nil, fmt.Errorf("create job: max_packets and max_bytes must be at most %d: %w", int64(math.MaxInt64), store.ErrInvalid)
	}
	for _, ifc := range j.Spec.Interfaces {
		if ifc == "" {
			return nil, fmt.Errorf("create job: an interface name is empty: %w", store.ErrInvalid)
		}
	}
	ds := slices.Clone(devices)
	slices.Sort(ds)
	ds = slices.Compact(ds)
	if ds[0] == "" {
		return nil, fmt.Errorf("create job: a device id is empty: %w", store.ErrInvalid)
	}
	return ds, nil
}

// IsExpired says whether a queued run of a job that expires at expiresAt
// (zero: never) has expired by now.
func IsExpired(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

// Claim decides a claim of r, a run of a job that expires at expiresAt:
// accept is true when r is queued and becomes accepted by claim; false
// with no error when claim is the one that accepted r already (a retry).
func Claim(r store.Run, expiresAt time.Time, claim string, now time.Time) (accept bool, err error) {
	what := fmt.Sprintf("claim the run of device %s in job %d", r.Device, r.JobID)
	switch {
	case claim == "":
		return false, fmt.Errorf("%s: give a claim token: %w", what, store.ErrInvalid)
	case r.State.Terminal():
		return false, fmt.Errorf("%s: it is %s: %w", what, r.State, store.ErrRunEnded)
	case r.State != store.RunQueued && r.Claim == claim:
		return false, nil
	case r.State != store.RunQueued:
		return false, fmt.Errorf("%s: it is %s by another claim: %w", what, r.State, store.ErrClaimed)
	case IsExpired(expiresAt, now):
		return false, fmt.Errorf("%s: the job expired at %s: %w", what, expiresAt.UTC().Format(time.RFC3339), store.ErrRunEnded)
	}
	return true, nil
}

// Update decides u, given for claim, of r at now. It returns r as it is
// to be stored and the transition to add (nil for progress only); stored
// false means nothing changes (the repeat of a terminal state).
func Update(r store.Run, claim string, u store.RunUpdate, now time.Time) (next store.Run, tr *store.Transition, stored bool, err error) {
	what := fmt.Sprintf("update the run of device %s in job %d", r.Device, r.JobID)
	switch {
	case claim == "":
		return r, nil, false, fmt.Errorf("%s: give a claim token: %w", what, store.ErrInvalid)
	case r.State == store.RunQueued:
		return r, nil, false, fmt.Errorf("%s: it is queued, not accepted by this claim (claim it first): %w", what, store.ErrClaimed)
	case r.Claim != claim:
		return r, nil, false, fmt.Errorf("%s: it was accepted by another claim: %w", what, store.ErrClaimed)
	case u.State != "" && !u.State.Valid():
		return r, nil, false, fmt.Errorf("%s: %q is not a run state: %w", what, u.State, store.ErrInvalid)
	case u.Packets > math.MaxInt64 || u.Bytes > math.MaxInt64 || u.Drops > math.MaxInt64 || u.Size > math.MaxInt64:
		return r, nil, false, fmt.Errorf("%s: progress counters must be at most %d: %w", what, int64(math.MaxInt64), store.ErrInvalid)
	}
	state := u.State
	if state == "" {
		state = r.State
	}
	if r.State.Terminal() {
		if state == r.State {
			return r, nil, false, nil
		}
		return r, nil, false, fmt.Errorf("%s to %s: it is %s: %w", what, state, r.State, store.ErrRunEnded)
	}
	if state != r.State && !r.State.CanBecome(state) {
		return r, nil, false, fmt.Errorf("%s: a run that is %s cannot become %s: %w", what, r.State, state, store.ErrBadTransition)
	}
	next = r
	next.Packets, next.Bytes, next.Drops, next.Size = u.Packets, u.Bytes, u.Drops, u.Size
	next.UpdatedAt = now
	if state != r.State {
		next.State = state
		tr = &store.Transition{State: state, At: now}
		if state == store.RunFailed || state == store.RunCanceled {
			next.Error, tr.Reason = u.Error, u.Error
		}
	}
	return next, tr, true, nil
}

// CheckResult checks a result for AttachResult.
func CheckResult(id int64, device string, r store.RunResult) error {
	switch {
	case r.Location == "":
		return fmt.Errorf("attach the result of device %s in job %d: give its location: %w", device, id, store.ErrInvalid)
	case r.SHA256 == "":
		return fmt.Errorf("attach the result of device %s in job %d: give its sha256: %w", device, id, store.ErrInvalid)
	case r.Size < 0:
		return fmt.Errorf("attach the result of device %s in job %d: size %d is negative: %w", device, id, r.Size, store.ErrInvalid)
	}
	return nil
}

// Attach decides whether r is stored as the result of run: true when
// run has none; false with no error when it has r's SHA256 already.
func Attach(run store.Run, r store.RunResult) (bool, error) {
	switch {
	case run.Result == nil:
		return true, nil
	case run.Result.SHA256 == r.SHA256:
		return false, nil
	}
	return false, fmt.Errorf("attach the result of device %s in job %d: it has another one (sha256 %s): %w", run.Device, run.JobID, run.Result.SHA256, store.ErrExists)
}
