package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// jobSpec sets every field of a job's spec.
var jobSpec = store.JobSpec{
	Interfaces: []string{"eth1", "eth2"}, Filter: "host 198.18.4.7", SnapLen: 262144,
	Duration: time.Minute, MaxPackets: 1000, MaxBytes: 1 << 30, Destination: "s3://bucket/jobs/",
}

// jobExpiry is how long after its creation a test job expires.
const jobExpiry = 10 * time.Minute

// newJob is a job created at created that expires jobExpiry later.
func newJob(created time.Time) store.Job {
	return store.Job{CreatedAt: created, ExpiresAt: created.Add(jobExpiry), Spec: jobSpec}
}

// mustCreateJob creates a job of jobSpec at created for devices.
func mustCreateJob(t *testing.T, s store.Store, created time.Time, devices ...string) store.Job {
	t.Helper()
	j, err := s.CreateJob(context.Background(), newJob(created), devices)
	mustNoError(t, err, "create job")
	return j
}

// mustEnrollN enrolls n devices and returns their ids, sorted (the order
// of a job's runs).
func mustEnrollN(t *testing.T, s store.Store, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, mustEnroll(t, s, fmt.Sprintf("sensor-%d", i), unique("m"), t0).Device.ID)
	}
	slices.Sort(ids)
	return ids
}

// queuedRun is a run as CreateJob stores it.
func queuedRun(id int64, device string, created time.Time) store.Run {
	return store.Run{
		JobID: id, Device: device, State: store.RunQueued, UpdatedAt: created,
		Transitions: []store.Transition{{State: store.RunQueued, At: created}},
	}
}

// mustClaim claims the device's run of job id for claim at now.
func mustClaim(t *testing.T, s store.Store, id int64, device, claim string, now time.Time) store.Run {
	t.Helper()
	r, err := s.ClaimRun(context.Background(), id, device, claim, now)
	mustNoError(t, err, fmt.Sprintf("claim the run of job %d", id))
	return r
}

// mustUpdate applies u to the device's run of job id at now.
func mustUpdate(t *testing.T, s store.Store, id int64, device, claim string, u store.RunUpdate, now time.Time) store.Run {
	t.Helper()
	r, err := s.UpdateRun(context.Background(), id, device, claim, u, now)
	mustNoError(t, err, fmt.Sprintf("update the run of job %d to %q", id, u.State))
	return r
}

// mustRunOf returns the device's run of job id as GetJob has it.
func mustRunOf(t *testing.T, s store.Store, id int64, device string) store.Run {
	t.Helper()
	j, err := s.GetJob(context.Background(), id)
	mustNoError(t, err, "get job")
	for _, r := range j.Runs {
		if r.Device == device {
			return r
		}
	}
	t.Fatalf("job %d has no run of device %s", id, device)
	return store.Run{}
}

// mustRunIs checks that got is want and that GetJob has it so too.
func mustRunIs(t *testing.T, s store.Store, want, got store.Run, what string) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("%s: returned (-want +got):\n%s", what, diff)
	}
	if diff := cmp.Diff(want, mustRunOf(t, s, want.JobID, want.Device), cmpOpts...); diff != "" {
		t.Errorf("%s: stored (-want +got):\n%s", what, diff)
	}
}

// mustJobsSeq checks the device's JobsSeq.
func mustJobsSeq(t *testing.T, s store.Store, device string, want int64, what string) {
	t.Helper()
	dc, err := s.GetCaptures(context.Background(), device)
	mustNoError(t, err, "get captures")
	if dc.JobsSeq != want {
		t.Errorf("%s: jobs_seq %d, want %d", what, dc.JobsSeq, want)
	}
}

// mustRunTo takes a new run of device (a job of its own, created at t0)
// to state along the shortest path, one minute a step, and returns the
// job's id, the claim and the run. An expired run is past its expiry.
func mustRunTo(t *testing.T, s store.Store, device string, state store.RunState) (int64, string, store.Run) {
	t.Helper()
	ctx := context.Background()
	j := mustCreateJob(t, s, t0, device)
	var path []store.RunState // after the claim
	switch state {
	case store.RunQueued:
		return j.ID, "", j.Runs[0]
	case store.RunExpired:
		ended, err := s.ExpireRuns(ctx, t0.Add(jobExpiry))
		mustNoError(t, err, "expire runs")
		for _, r := range ended {
			if r.JobID == j.ID {
				return j.ID, "", r
			}
		}
		t.Fatalf("job %d: the run did not expire", j.ID)
	case store.RunRunning:
		path = []store.RunState{store.RunRunning}
	case store.RunUploading:
		path = []store.RunState{store.RunRunning, store.RunUploading}
	case store.RunFinished:
		path = []store.RunState{store.RunRunning, store.RunUploading, store.RunFinished}
	case store.RunFailed, store.RunCanceled:
		path = []store.RunState{store.RunRunning, state}
	}
	claim := unique("claim")
	at := t0.Add(time.Minute)
	r := mustClaim(t, s, j.ID, device, claim, at)
	for _, st := range path {
		at = at.Add(time.Minute)
		r = mustUpdate(t, s, j.ID, device, claim, store.RunUpdate{State: st, Error: reasonFor(st)}, at)
	}
	if r.State != state {
		t.Fatalf("job %d: the run is %s, want %s", j.ID, r.State, state)
	}
	return j.ID, claim, r
}

// reasonFor is the error an agent gives with state.
func reasonFor(st store.RunState) string {
	switch st {
	case store.RunFailed:
		return "the capture failed: interface eth1 is gone"
	case store.RunCanceled:
		return "canceled by an admin"
	}
	return ""
}

func testJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetJob(ctx, 1)
	mustErrorIs(t, err, store.ErrNotFound, "get a job of an empty store")
	js, err := s.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list the jobs of an empty store")
	if len(js) != 0 {
		t.Errorf("an empty store lists %d jobs", len(js))
	}

	ds := mustEnrollN(t, s, 2)
	var want []store.Job
	for i := range 5 {
		created := t0.Add(time.Duration(i) * time.Minute)
		// Devices given in any order, and twice, are one run each, by device id.
		got, err := s.CreateJob(ctx, newJob(created), []string{ds[1], ds[0], ds[1]})
		mustNoError(t, err, "create job")
		w := newJob(created)
		w.ID = int64(i + 1)
		w.Runs = []store.Run{queuedRun(w.ID, ds[0], created), queuedRun(w.ID, ds[1], created)}
		if diff := cmp.Diff(w, got, cmpOpts...); diff != "" {
			t.Errorf("job %d: created (-want +got):\n%s", i+1, diff)
		}
		got, err = s.GetJob(ctx, w.ID)
		mustNoError(t, err, "get job")
		if diff := cmp.Diff(w, got, cmpOpts...); diff != "" {
			t.Errorf("job %d: stored (-want +got):\n%s", i+1, diff)
		}
		want = append([]store.Job{w}, want...) // newest first
	}
	_, err = s.GetJob(ctx, 6)
	mustErrorIs(t, err, store.ErrNotFound, "get an unknown job")

	pages := []struct {
		name string
		opts store.ListJobsOptions
		want []store.Job
	}{
		{"all", store.ListJobsOptions{}, want},
		{"limit", store.ListJobsOptions{Limit: 2}, want[:2]},
		{"next page", store.ListJobsOptions{Limit: 2, Before: 4}, want[2:4]},
		{"last page", store.ListJobsOptions{Limit: 2, Before: 2}, want[4:]},
		{"before the first", store.ListJobsOptions{Before: 1}, nil},
		{"before one beyond the last", store.ListJobsOptions{Before: 100}, want},
		{"a limit beyond the jobs", store.ListJobsOptions{Limit: 1000}, want},
	}
	for _, p := range pages {
		got, err := s.ListJobs(ctx, p.opts)
		mustNoError(t, err, "list jobs "+p.name)
		if diff := cmp.Diff(p.want, got, cmpOpts...); diff != "" {
			t.Errorf("list jobs %s %+v (-want +got):\n%s", p.name, p.opts, diff)
		}
	}

	// The default limit.
	for i := range 100 {
		mustCreateJob(t, s, t0.Add(time.Hour+time.Duration(i)*time.Second), ds[0])
	}
	got, err := s.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list jobs")
	if len(got) != 100 || got[0].ID != 105 || got[99].ID != 6 {
		t.Errorf("list jobs: %d jobs (first %d), want the newest 100, 105 to 6", len(got), got[0].ID)
	}

	// A job that never expires.
	j := newJob(t0)
	j.ExpiresAt = time.Time{}
	created, err := s.CreateJob(ctx, j, ds[:1])
	mustNoError(t, err, "create a job without expiry")
	if !created.ExpiresAt.IsZero() {
		t.Errorf("a job without expiry has expiry %v", created.ExpiresAt)
	}
}

// testCreateJobRefused: a job the store refuses stores nothing, and takes
// no id.
func testCreateJobRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, s, 2)
	revoked := mustEnroll(t, s, "revoked", "m-r", t0).Device.ID
	_, err := s.RevokeDevice(ctx, revoked, t0)
	mustNoError(t, err, "revoke")

	noIfaces, noDest, noTime := newJob(t0), newJob(t0), newJob(t0)
	noIfaces.Spec.Interfaces = nil
	noDest.Spec.Destination = ""
	noTime.CreatedAt = time.Time{}
	cases := []struct {
		name    string
		job     store.Job
		devices []string
		want    error
		named   string // in the error
	}{
		{"unknown device", newJob(t0), []string{ds[0], "nosuchdevice", ds[1]}, store.ErrNotFound, "nosuchdevice"},
		{"revoked device", newJob(t0), []string{ds[0], revoked}, store.ErrRevoked, revoked},
		{"no devices", newJob(t0), nil, store.ErrInvalid, ""},
		{"empty device id", newJob(t0), []string{""}, store.ErrInvalid, ""},
		{"no interfaces", noIfaces, ds, store.ErrInvalid, ""},
		{"no destination", noDest, ds, store.ErrInvalid, ""},
		{"no creation time", noTime, ds, store.ErrInvalid, ""},
	}
	for _, c := range cases {
		_, err := s.CreateJob(ctx, c.job, c.devices)
		mustErrorIs(t, err, c.want, "create a job: "+c.name)
		if !strings.Contains(err.Error(), c.named) {
			t.Errorf("create a job: %s: error %q does not name %s", c.name, err, c.named)
		}
		t.Logf("%s: %v", c.name, err)
	}
	js, err := s.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list jobs")
	if len(js) != 0 {
		t.Errorf("refused jobs stored %d jobs", len(js))
	}
	for _, d := range append(ds, revoked) {
		mustJobsSeq(t, s, d, 0, "a device of refused jobs")
		drs, err := s.DeviceRuns(ctx, d)
		mustNoError(t, err, "device runs")
		if len(drs) != 0 {
			t.Errorf("a device of refused jobs has %d runs", len(drs))
		}
	}
	if j := mustCreateJob(t, s, t0, ds...); j.ID != 1 {
		t.Errorf("the first job after refused ones has id %d, want 1", j.ID)
	}
}

func testClaimRun(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, s, 2)
	j := mustCreateJob(t, s, t0, ds...)
	at := t0.Add(time.Minute)

	_, err := s.ClaimRun(ctx, 99, ds[0], "c", at)
	mustErrorIs(t, err, store.ErrNotFound, "claim a run of an unknown job")
	other := mustEnroll(t, s, "other", "m-o", t0).Device.ID
	_, err = s.ClaimRun(ctx, j.ID, other, "c", at)
	mustErrorIs(t, err, store.ErrNotFound, "claim a run of a device not in the job")
	if !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "job 1") {
		t.Errorf("claim a run of a device not in the job: %q names neither the device nor the job", err)
	}
	_, err = s.ClaimRun(ctx, j.ID, ds[0], "", at)
	mustErrorIs(t, err, store.ErrInvalid, "claim without a claim token")

	won := mustClaimRace(t, []store.Store{s}, j.ID, ds[0], at)
	want := queuedRun(j.ID, ds[0], t0)
	want.State, want.Claim, want.UpdatedAt = store.RunAccepted, won, at
	want.Transitions = append(want.Transitions, store.Transition{State: store.RunAccepted, At: at})
	mustRunIs(t, s, want, mustRunOf(t, s, j.ID, ds[0]), "the claimed run")

	// The winner retrying after a timeout gets the run as it is.
	got, err := s.ClaimRun(ctx, j.ID, ds[0], won, at.Add(time.Minute))
	mustNoError(t, err, "claim again with the same claim")
	mustRunIs(t, s, want, got, "claim again with the same claim")
	r := mustUpdate(t, s, j.ID, ds[0], won, store.RunUpdate{State: store.RunRunning, Packets: 3}, at.Add(2*time.Minute))
	got, err = s.ClaimRun(ctx, j.ID, ds[0], won, at.Add(3*time.Minute))
	mustNoError(t, err, "claim a running run again with its claim")
	mustRunIs(t, s, r, got, "claim a running run again with its claim")
	_, err = s.ClaimRun(ctx, j.ID, ds[0], "another attempt", at.Add(3*time.Minute))
	mustErrorIs(t, err, store.ErrClaimed, "claim a running run with another claim")

	// The other device's run of the job is its own.
	mustClaim(t, s, j.ID, ds[1], "device 1's claim", at)

	// Ended runs: even their claim gets ErrRunEnded.
	mustUpdate(t, s, j.ID, ds[0], won, store.RunUpdate{State: store.RunFinished}, at.Add(4*time.Minute))
	_, err = s.ClaimRun(ctx, j.ID, ds[0], won, at.Add(5*time.Minute))
	mustErrorIs(t, err, store.ErrRunEnded, "claim a finished run with its claim")
	_, err = s.ClaimRun(ctx, j.ID, ds[0], "another attempt", at.Add(5*time.Minute))
	mustErrorIs(t, err, store.ErrRunEnded, "claim a finished run with another claim")

	// Expiry: a queued run at or past its job's expiry cannot be claimed,
	// before ExpireRuns and after.
	late := mustCreateJob(t, s, t0, ds[0])
	_, err = s.ClaimRun(ctx, late.ID, ds[0], "late", t0.Add(jobExpiry))
	mustErrorIs(t, err, store.ErrRunEnded, "claim at the job's expiry")
	mustRunIs(t, s, late.Runs[0], mustRunOf(t, s, late.ID, ds[0]), "a run claimed too late")
	_, err = s.ExpireRuns(ctx, t0.Add(jobExpiry))
	mustNoError(t, err, "expire runs")
	_, err = s.ClaimRun(ctx, late.ID, ds[0], "late", t0.Add(jobExpiry))
	mustErrorIs(t, err, store.ErrRunEnded, "claim an expired run")
	t.Logf("claim an expired run: %v", err)
	fresh := mustCreateJob(t, s, t0, ds[0])
	mustClaim(t, s, fresh.ID, ds[0], "in time", t0.Add(jobExpiry-time.Microsecond))
}

// mustClaimRace races raceN claims of the device's run of job id, each
// with its own claim, through stores in turn: exactly one wins and the
// others get ErrClaimed. It returns the winning claim.
func mustClaimRace(t *testing.T, stores []store.Store, id int64, device string, at time.Time) string {
	t.Helper()
	ctx := context.Background()
	claims := make([]string, raceN)
	runs := make([]store.Run, raceN)
	errs := make([]error, raceN)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range raceN {
		claims[i] = unique("attempt")
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			runs[i], errs[i] = s.ClaimRun(ctx, id, device, claims[i], at)
		})
	}
	close(start)
	wg.Wait()
	won := ""
	for i, err := range errs {
		switch {
		case err == nil && won != "":
			t.Errorf("claims %s and %s both won", won, claims[i])
		case err == nil:
			won = claims[i]
			if runs[i].State != store.RunAccepted || runs[i].Claim != won {
				t.Errorf("the winning claim got the run %s with claim %q, want accepted with %q", runs[i].State, runs[i].Claim, won)
			}
		case !errors.Is(err, store.ErrClaimed):
			t.Errorf("claim %d: got %v, want ErrClaimed", i, err)
		}
	}
	if won == "" {
		t.Fatal("no claim won")
	}
	r, err := stores[0].GetJob(ctx, id)
	mustNoError(t, err, "get job")
	for _, run := range r.Runs {
		if run.Device == device && run.Claim != won {
			t.Errorf("the run is stored with claim %q, want the winner's %q", run.Claim, won)
		}
		if run.Device == device && len(run.Transitions) != 2 {
			t.Errorf("the run has %d transitions after the race, want 2 (queued, accepted)", len(run.Transitions))
		}
	}
	return won
}

// testRunLife follows one run from claim to finished with progress on
// the way, and checks what every step stores.
func testRunLife(t *testing.T, s store.Store) {
	ctx := context.Background()
	dev := mustEnrollN(t, s, 1)[0]
	j := mustCreateJob(t, s, t0, dev)
	claim := "the agent's claim"
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	_, err := s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{State: store.RunRunning}, at(1))
	mustErrorIs(t, err, store.ErrClaimed, "update a queued run")
	_, err = s.UpdateRun(ctx, 99, dev, claim, store.RunUpdate{}, at(1))
	mustErrorIs(t, err, store.ErrNotFound, "update a run of an unknown job")

	want := queuedRun(j.ID, dev, t0)
	want.State, want.Claim, want.UpdatedAt = store.RunAccepted, claim, at(1)
	want.Transitions = append(want.Transitions, store.Transition{State: store.RunAccepted, At: at(1)})
	mustRunIs(t, s, want, mustClaim(t, s, j.ID, dev, claim, at(1)), "claimed")

	_, err = s.UpdateRun(ctx, j.ID, dev, "another claim", store.RunUpdate{State: store.RunRunning}, at(2))
	mustErrorIs(t, err, store.ErrClaimed, "update with another claim")
	_, err = s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{State: "paused"}, at(2))
	mustErrorIs(t, err, store.ErrInvalid, "update to a state that is not one")
	_, err = s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{State: store.RunQueued}, at(2))
	mustErrorIs(t, err, store.ErrBadTransition, "update an accepted run to queued")
	mustRunIs(t, s, want, mustRunOf(t, s, j.ID, dev), "after refused updates")

	steps := []struct {
		name string
		at   time.Time
		u    store.RunUpdate
		tr   bool // a transition
	}{
		{"progress while accepted", at(2), store.RunUpdate{Size: 216}, false},
		{"running", at(3), store.RunUpdate{State: store.RunRunning, Packets: 1, Bytes: 60, Size: 300}, true},
		{"progress", at(4), store.RunUpdate{Packets: 10, Bytes: 1200, Drops: 1, Size: 2048}, false},
		{"progress naming the state", at(5), store.RunUpdate{State: store.RunRunning, Packets: 20, Bytes: 2400, Drops: 2, Size: 4096}, false},
		{"uploading", at(6), store.RunUpdate{State: store.RunUploading, Packets: 25, Bytes: 3000, Drops: 2, Size: 5000}, true},
		{"finished", at(7), store.RunUpdate{State: store.RunFinished, Packets: 25, Bytes: 3000, Drops: 2, Size: 5120, Error: "ignored"}, true},
	}
	for _, st := range steps {
		want.Packets, want.Bytes, want.Drops, want.Size = st.u.Packets, st.u.Bytes, st.u.Drops, st.u.Size
		want.UpdatedAt = st.at
		if st.tr {
			want.State = st.u.State
			want.Transitions = append(want.Transitions, store.Transition{State: st.u.State, At: st.at})
		}
		mustRunIs(t, s, want, mustUpdate(t, s, j.ID, dev, claim, st.u, st.at), st.name)
	}

	// The agent repeating its finish (a lost answer) changes nothing.
	got, err := s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{State: store.RunFinished, Packets: 99}, at(8))
	mustNoError(t, err, "finish again")
	mustRunIs(t, s, want, got, "finish again")
	got, err = s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{Packets: 99}, at(8))
	mustNoError(t, err, "progress of a finished run")
	mustRunIs(t, s, want, got, "progress of a finished run")
	_, err = s.UpdateRun(ctx, j.ID, dev, claim, store.RunUpdate{State: store.RunFailed, Error: "late"}, at(8))
	mustErrorIs(t, err, store.ErrRunEnded, "fail a finished run")
	_, err = s.UpdateRun(ctx, j.ID, dev, "another claim", store.RunUpdate{State: store.RunFinished}, at(8))
	mustErrorIs(t, err, store.ErrClaimed, "finish with another claim")
	mustRunIs(t, s, want, mustRunOf(t, s, j.ID, dev), "after the repeats")
}

// testRunTransitions tries every state change from every state an agent
// updates, and checks that exactly those RunState.CanBecome allows are
// made, with the reason of failed and canceled kept.
func testRunTransitions(t *testing.T, s store.Store) {
	ctx := context.Background()
	dev := mustEnrollN(t, s, 1)[0]
	states := []store.RunState{store.RunQueued, store.RunAccepted, store.RunRunning, store.RunUploading,
		store.RunFinished, store.RunFailed, store.RunCanceled, store.RunExpired}
	now := t0.Add(time.Hour)
	var made int
	for _, from := range []store.RunState{store.RunAccepted, store.RunRunning, store.RunUploading} {
		for _, to := range states {
			if to == from {
				continue
			}
			name := fmt.Sprintf("%s → %s", from, to)
			id, claim, before := mustRunTo(t, s, dev, from)
			u := store.RunUpdate{State: to, Packets: 5, Bytes: 500, Drops: 1, Size: 1024, Error: reasonFor(to)}
			got, err := s.UpdateRun(ctx, id, dev, claim, u, now)
			if !from.CanBecome(to) {
				mustErrorIs(t, err, store.ErrBadTransition, name)
				mustRunIs(t, s, before, mustRunOf(t, s, id, dev), name+" refused")
				continue
			}
			mustNoError(t, err, name)
			made++
			want := before
			want.State, want.UpdatedAt = to, now
			want.Packets, want.Bytes, want.Drops, want.Size = 5, 500, 1, 1024
			want.Error = reasonFor(to)
			want.Transitions = append(append([]store.Transition{}, before.Transitions...),
				store.Transition{State: to, At: now, Reason: reasonFor(to)})
			mustRunIs(t, s, want, got, name)
		}
	}
	if made != 11 {
		t.Errorf("%d transitions made, want the 11 an agent makes", made)
	}

	// A terminal run: its own state again is an idempotent repeat,
	// another is ErrRunEnded.
	for _, from := range []store.RunState{store.RunFinished, store.RunFailed, store.RunCanceled} {
		id, claim, before := mustRunTo(t, s, dev, from)
		if from != store.RunFinished && (before.Error != reasonFor(from) || before.Transitions[len(before.Transitions)-1].Reason != reasonFor(from)) {
			t.Errorf("%s: error %q and reason %q, want %q", from, before.Error, before.Transitions[len(before.Transitions)-1].Reason, reasonFor(from))
		}
		for _, to := range states {
			name := fmt.Sprintf("%s → %s", from, to)
			got, err := s.UpdateRun(ctx, id, dev, claim, store.RunUpdate{State: to, Packets: 77, Error: "again"}, now)
			if to == from {
				mustNoError(t, err, name)
				mustRunIs(t, s, before, got, name+" (a repeat)")
				continue
			}
			mustErrorIs(t, err, store.ErrRunEnded, name)
		}
		mustRunIs(t, s, before, mustRunOf(t, s, id, dev), string(from)+" after the tries")
	}
	// An expired run was never claimed.
	id, _, before := mustRunTo(t, s, dev, store.RunExpired)
	_, err := s.UpdateRun(ctx, id, dev, "any", store.RunUpdate{State: store.RunRunning}, now)
	mustErrorIs(t, err, store.ErrClaimed, "update an expired run")
	mustRunIs(t, s, before, mustRunOf(t, s, id, dev), "an expired run after an update")
}

func testCancelJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.CancelJob(ctx, 99, t0)
	mustErrorIs(t, err, store.ErrNotFound, "cancel an unknown job")

	// Three devices: one queued, one running, one finished.
	ds := mustEnrollN(t, s, 3)
	queued, running, finished := ds[0], ds[1], ds[2]
	j := mustCreateJob(t, s, t0, ds...)
	mustClaim(t, s, j.ID, running, "run", t0.Add(time.Minute))
	mustUpdate(t, s, j.ID, running, "run", store.RunUpdate{State: store.RunRunning, Packets: 4}, t0.Add(2*time.Minute))
	mustClaim(t, s, j.ID, finished, "fin", t0.Add(time.Minute))
	mustUpdate(t, s, j.ID, finished, "fin", store.RunUpdate{State: store.RunRunning}, t0.Add(2*time.Minute))
	mustUpdate(t, s, j.ID, finished, "fin", store.RunUpdate{State: store.RunFinished}, t0.Add(3*time.Minute))
	before, err := s.GetJob(ctx, j.ID)
	mustNoError(t, err, "get job")

	canceledAt := t0.Add(4 * time.Minute)
	got, err := s.CancelJob(ctx, j.ID, canceledAt)
	mustNoError(t, err, "cancel")
	want := before
	want.CancelRequestedAt = canceledAt
	want.Runs = append([]store.Run{}, before.Runs...)
	q := &want.Runs[0]
	q.State, q.Error, q.UpdatedAt = store.RunCanceled, "canceled before the device accepted it", canceledAt
	q.Transitions = append(append([]store.Transition{}, q.Transitions...),
		store.Transition{State: store.RunCanceled, At: canceledAt, Reason: "canceled before the device accepted it"})
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("canceled job: returned (-want +got):\n%s", diff)
	}
	stored, err := s.GetJob(ctx, j.ID)
	mustNoError(t, err, "get job")
	if diff := cmp.Diff(want, stored, cmpOpts...); diff != "" {
		t.Errorf("canceled job: stored (-want +got):\n%s", diff)
	}
	// The agents of the live runs see the cancel; the finished run's do not.
	mustJobsSeq(t, s, queued, 2, "the queued run's device after the cancel")
	mustJobsSeq(t, s, running, 2, "the running run's device after the cancel")
	mustJobsSeq(t, s, finished, 1, "the finished run's device after the cancel")
	drs, err := s.DeviceRuns(ctx, running)
	mustNoError(t, err, "device runs")
	if len(drs) != 1 || !drs[0].Job.CancelRequestedAt.Equal(canceledAt) {
		t.Errorf("the running device's runs %+v, want the job with its cancel requested at %v", drs, canceledAt)
	}

	// Canceling again keeps the first time.
	got, err = s.CancelJob(ctx, j.ID, canceledAt.Add(time.Minute))
	mustNoError(t, err, "cancel again")
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("canceled again (-want +got):\n%s", diff)
	}
	mustJobsSeq(t, s, queued, 2, "the canceled run's device after the second cancel")
	mustJobsSeq(t, s, running, 3, "the running run's device after the second cancel")

	// The agent stops, uploads and ends its run canceled.
	r := mustUpdate(t, s, j.ID, running, "run", store.RunUpdate{State: store.RunCanceled, Packets: 9, Error: "canceled by an admin"}, canceledAt.Add(time.Second))
	if r.Error != "canceled by an admin" {
		t.Errorf("the run canceled by its agent has error %q", r.Error)
	}
	_, err = s.CancelJob(ctx, j.ID, canceledAt.Add(2*time.Minute))
	mustErrorIs(t, err, store.ErrJobEnded, "cancel a job whose runs all ended")
	if !strings.Contains(err.Error(), fmt.Sprint("job ", j.ID)) {
		t.Errorf("cancel an ended job: %q does not name the job", err)
	}
	mustJobsSeq(t, s, running, 3, "the device of an ended job after a refused cancel")

	// A job that ended without a cancel keeps none.
	done := mustCreateJob(t, s, t0, queued)
	mustClaim(t, s, done.ID, queued, "c", t0.Add(time.Minute))
	mustUpdate(t, s, done.ID, queued, "c", store.RunUpdate{State: store.RunFailed, Error: "no such interface"}, t0.Add(2*time.Minute))
	_, err = s.CancelJob(ctx, done.ID, t0.Add(3*time.Minute))
	mustErrorIs(t, err, store.ErrJobEnded, "cancel a failed job")
	got, err = s.GetJob(ctx, done.ID)
	mustNoError(t, err, "get job")
	if !got.CancelRequestedAt.IsZero() {
		t.Errorf("a refused cancel stored cancel_requested_at %v", got.CancelRequestedAt)
	}

	// A job whose only run is queued ends at once.
	only := mustCreateJob(t, s, t0, queued)
	got, err = s.CancelJob(ctx, only.ID, canceledAt)
	mustNoError(t, err, "cancel a queued job")
	if got.Runs[0].State != store.RunCanceled {
		t.Errorf("the queued run of a canceled job is %s, want canceled", got.Runs[0].State)
	}
	_, err = s.CancelJob(ctx, only.ID, canceledAt)
	mustErrorIs(t, err, store.ErrJobEnded, "cancel a canceled job")
}

// testCancelClaimRace: a cancel racing with a claim either comes first
// (the run is canceled, the claim ErrRunEnded) or second (the run is
// accepted and sees the cancel).
func testCancelClaimRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	dev := mustEnrollN(t, s, 1)[0]
	outcomes := map[string]int{}
	for range 10 {
		j := mustCreateJob(t, s, t0, dev)
		var claimErr, cancelErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; _, claimErr = s.ClaimRun(ctx, j.ID, dev, "c", t0.Add(time.Minute)) })
		wg.Go(func() { <-start; _, cancelErr = s.CancelJob(ctx, j.ID, t0.Add(time.Minute)) })
		close(start)
		wg.Wait()
		mustNoError(t, cancelErr, "cancel")
		r := mustRunOf(t, s, j.ID, dev)
		switch {
		case claimErr == nil && r.State == store.RunAccepted:
			outcomes["claim first"]++
		case errors.Is(claimErr, store.ErrRunEnded) && r.State == store.RunCanceled:
			outcomes["cancel first"]++
		default:
			t.Errorf("job %d: claim %v, run %s", j.ID, claimErr, r.State)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

func testExpireRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, s, 2)
	a, b := ds[0], ds[1]
	j1 := mustCreateJob(t, s, t0, a, b)                  // expires t0+10m
	j2 := mustCreateJob(t, s, t0.Add(10*time.Minute), a) // t0+20m
	forever := newJob(t0)
	forever.ExpiresAt = time.Time{}
	j3, err := s.CreateJob(ctx, forever, []string{b})
	mustNoError(t, err, "create a job without expiry")
	mustClaim(t, s, j1.ID, a, "c", t0.Add(time.Minute)) // accepted in time

	expire := func(now time.Time, want ...store.Run) {
		t.Helper()
		got, err := s.ExpireRuns(ctx, now)
		mustNoError(t, err, "expire runs")
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("expire runs at %v (-want +got):\n%s", now.Sub(t0), diff)
		}
		for _, r := range want {
			mustRunIs(t, s, r, mustRunOf(t, s, r.JobID, r.Device), "expired run")
		}
	}
	expired := func(r store.Run, at time.Time) store.Run {
		r.State, r.UpdatedAt = store.RunExpired, at
		r.Transitions = append(append([]store.Transition{}, r.Transitions...),
			store.Transition{State: store.RunExpired, At: at, Reason: "no device accepted it before it expired"})
		return r
	}
	expire(t0.Add(jobExpiry - time.Microsecond))
	at := t0.Add(jobExpiry)
	expire(at, expired(j1.Runs[1], at))
	expire(at)
	if r := mustRunOf(t, s, j1.ID, a); r.State != store.RunAccepted {
		t.Errorf("an accepted run of an expired job is %s, want accepted", r.State)
	}
	later := t0.Add(100 * 365 * 24 * time.Hour)
	expire(later, expired(j2.Runs[0], later))
	if r := mustRunOf(t, s, j3.ID, b); r.State != store.RunQueued {
		t.Errorf("the run of a job without expiry is %s, want queued", r.State)
	}
}

func testFailSilentRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, s, 6)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	j := mustCreateJob(t, s, t0, ds...)
	// ds[3]'s run stays queued.
	accepted, running, uploading, finished, recent := ds[0], ds[1], ds[2], ds[4], ds[5]
	mustClaim(t, s, j.ID, accepted, "a", at(1))
	mustClaim(t, s, j.ID, running, "r", at(1))
	mustUpdate(t, s, j.ID, running, "r", store.RunUpdate{State: store.RunRunning}, at(2))
	mustUpdate(t, s, j.ID, running, "r", store.RunUpdate{Packets: 7}, at(5)) // progress keeps it alive
	mustClaim(t, s, j.ID, uploading, "u", at(1))
	mustUpdate(t, s, j.ID, uploading, "u", store.RunUpdate{State: store.RunUploading}, at(2))
	mustClaim(t, s, j.ID, finished, "f", at(1))
	mustUpdate(t, s, j.ID, finished, "f", store.RunUpdate{State: store.RunRunning}, at(1))
	mustUpdate(t, s, j.ID, finished, "f", store.RunUpdate{State: store.RunFinished}, at(2))
	mustClaim(t, s, j.ID, recent, "x", at(3)) // updated at the cutoff: not silent
	before, err := s.GetJob(ctx, j.ID)
	mustNoError(t, err, "get job")

	const reason = "the device stopped reporting for 2m0s: the agent stopped or lost the console"
	cutoff, now := at(3), at(6)
	got, err := s.FailSilentRuns(ctx, cutoff, reason, now)
	mustNoError(t, err, "fail silent runs")
	var want []store.Run
	for _, r := range before.Runs {
		if r.Device == accepted || r.Device == uploading {
			r.State, r.Error, r.UpdatedAt = store.RunFailed, reason, now
			r.Transitions = append(append([]store.Transition{}, r.Transitions...), store.Transition{State: store.RunFailed, At: now, Reason: reason})
			want = append(want, r)
		}
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("failed silent runs (-want +got):\n%s", diff)
	}
	after, err := s.GetJob(ctx, j.ID)
	mustNoError(t, err, "get job")
	for i, r := range after.Runs {
		w := before.Runs[i]
		switch r.Device {
		case accepted:
			w = want[0]
		case uploading:
			w = want[1]
		}
		if diff := cmp.Diff(w, r, cmpOpts...); diff != "" {
			t.Errorf("run of %s after failing silent runs (-want +got):\n%s", r.Device, diff)
		}
	}
	again, err := s.FailSilentRuns(ctx, cutoff, reason, now)
	mustNoError(t, err, "fail silent runs again")
	if len(again) != 0 {
		t.Errorf("failing silent runs again failed %d", len(again))
	}

	// The agent that comes back: its finish is refused, its upload taken.
	_, err = s.UpdateRun(ctx, j.ID, uploading, "u", store.RunUpdate{State: store.RunFinished}, at(7))
	mustErrorIs(t, err, store.ErrRunEnded, "finish a run failed for silence")
	res := store.RunResult{Location: "console", Size: 4096, SHA256: strings.Repeat("ab", 32), StoredAt: at(7)}
	r, err := s.AttachResult(ctx, j.ID, uploading, res)
	mustNoError(t, err, "attach the result of a run failed for silence")
	if diff := cmp.Diff(&res, r.Result); diff != "" || r.State != store.RunFailed {
		t.Errorf("a run failed for silence, given its result: %s, result (-want +got):\n%s", r.State, diff)
	}
}

func testAttachResult(t *testing.T, s store.Store) {
	ctx := context.Background()
	dev := mustEnrollN(t, s, 1)[0]
	id, _, before := mustRunTo(t, s, dev, store.RunUploading)
	res := store.RunResult{Location: "console", Size: 123456, SHA256: strings.Repeat("0f", 32), StoredAt: t0.Add(time.Hour)}

	_, err := s.AttachResult(ctx, 99, dev, res)
	mustErrorIs(t, err, store.ErrNotFound, "attach to an unknown job")
	for name, bad := range map[string]store.RunResult{
		"no location": {SHA256: res.SHA256, Size: 1},
		"no sha256":   {Location: "console", Size: 1},
	} {
		_, err = s.AttachResult(ctx, id, dev, bad)
		mustErrorIs(t, err, store.ErrInvalid, "attach a result with "+name)
	}

	want := before
	want.Result = &res
	got, err := s.AttachResult(ctx, id, dev, res)
	mustNoError(t, err, "attach")
	mustRunIs(t, s, want, got, "attach")
	// A retried upload: the same file again is a no-op.
	again := res
	again.StoredAt = t0.Add(2 * time.Hour)
	got, err = s.AttachResult(ctx, id, dev, again)
	mustNoError(t, err, "attach the same again")
	mustRunIs(t, s, want, got, "attach the same again")
	other := res
	other.SHA256 = strings.Repeat("ee", 32)
	_, err = s.AttachResult(ctx, id, dev, other)
	mustErrorIs(t, err, store.ErrExists, "attach another result")
	mustRunIs(t, s, want, mustRunOf(t, s, id, dev), "after attaching another")

	// Any state takes it; an S3 location as well.
	qid, _, _ := mustRunTo(t, s, dev, store.RunQueued)
	s3 := store.RunResult{Location: "s3://bucket/jobs/1/sensor.pcapng", Size: 1, SHA256: strings.Repeat("11", 32)}
	got, err = s.AttachResult(ctx, qid, dev, s3)
	mustNoError(t, err, "attach to a queued run")
	if diff := cmp.Diff(&s3, got.Result); diff != "" {
		t.Errorf("the queued run's result (-want +got):\n%s", diff)
	}
}

// testDeviceRuns judges expiry by the clock, as DeviceRuns does: its jobs
// are created around time.Now.
func testDeviceRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.DeviceRuns(ctx, "nosuchdevice")
	mustErrorIs(t, err, store.ErrNotFound, "runs of an unknown device")
	ds := mustEnrollN(t, s, 2)
	dev, other := ds[0], ds[1]
	drs, err := s.DeviceRuns(ctx, dev)
	mustNoError(t, err, "runs of a device without jobs")
	if len(drs) != 0 {
		t.Errorf("a device without jobs has %d runs", len(drs))
	}

	now := time.Now().UTC().Truncate(time.Second)
	create := func(created time.Time, devices ...string) store.Job {
		t.Helper()
		j, err := s.CreateJob(ctx, store.Job{CreatedAt: created, ExpiresAt: created.Add(time.Hour), Spec: jobSpec}, devices)
		mustNoError(t, err, "create job")
		return j
	}
	queued := create(now, dev, other)
	create(now.Add(-2*time.Hour), dev) // expired, not yet by ExpireRuns
	accepted := create(now, dev)
	mustClaim(t, s, accepted.ID, dev, "a", now)
	done := create(now, dev)
	mustClaim(t, s, done.ID, dev, "d", now)
	mustUpdate(t, s, done.ID, dev, "d", store.RunUpdate{State: store.RunFailed}, now)
	canceled := create(now, dev)
	_, err = s.CancelJob(ctx, canceled.ID, now)
	mustNoError(t, err, "cancel")
	canceling := create(now, dev)
	mustClaim(t, s, canceling.ID, dev, "c", now)
	mustUpdate(t, s, canceling.ID, dev, "c", store.RunUpdate{State: store.RunRunning}, now)
	_, err = s.CancelJob(ctx, canceling.ID, now)
	mustNoError(t, err, "cancel")
	create(now, other)
	oldExpired := create(now.Add(-3*time.Hour), dev)
	mustClaim(t, s, oldExpired.ID, dev, "o", now.Add(-3*time.Hour)) // accepted before the expiry: still live

	drs, err = s.DeviceRuns(ctx, dev)
	mustNoError(t, err, "device runs")
	var want []store.DeviceRun
	for _, id := range []int64{queued.ID, accepted.ID, canceling.ID, oldExpired.ID} {
		j, err := s.GetJob(ctx, id)
		mustNoError(t, err, "get job")
		for _, r := range j.Runs {
			if r.Device == dev {
				j.Runs = []store.Run{r}
				want = append(want, store.DeviceRun{Job: j, Run: r})
			}
		}
	}
	if diff := cmp.Diff(want, drs, cmpOpts...); diff != "" {
		t.Errorf("device runs, oldest job first (-want +got):\n%s", diff)
	}
	drs, err = s.DeviceRuns(ctx, other)
	mustNoError(t, err, "device runs")
	if len(drs) != 2 || drs[0].Job.ID != queued.ID || len(drs[0].Job.Runs) != 1 || drs[0].Job.Runs[0].Device != other {
		t.Errorf("the other device's runs: %+v", drs)
	}
}

// testJobsSeq: a device's JobsSeq is reported at generation 0 and
// increases with each job created for it.
func testJobsSeq(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, s, 2)
	mustJobsSeq(t, s, ds[0], 0, "a device that never had a job")
	mustCreateJob(t, s, t0, ds[0])
	mustCreateJob(t, s, t0, ds...)
	dc, err := s.GetCaptures(ctx, ds[0])
	mustNoError(t, err, "get captures")
	if dc.Generation != 0 || dc.JobsSeq != 2 {
		t.Errorf("after two jobs: generation %d, jobs_seq %d; want 0 and 2", dc.Generation, dc.JobsSeq)
	}
	mustJobsSeq(t, s, ds[1], 1, "the device of one job")
	_, err = s.PutCaptures(ctx, ds[0], 0, []store.Capture{monitorCapture}, t0)
	mustNoError(t, err, "put captures")
	mustJobsSeq(t, s, ds[0], 2, "after a put")

	// WaitForChanges returns at once when either is ahead; WaitForChange
	// is about the generation alone.
	for _, c := range []struct {
		gen, jobs int64
	}{{0, 2}, {1, 0}, {1, -1}} {
		dc, err := s.WaitForChanges(ctx, ds[0], c.gen, c.jobs)
		mustNoError(t, err, "wait for changes behind")
		if dc.Generation != 1 || dc.JobsSeq != 2 {
			t.Errorf("wait for changes after %d/%d: %d/%d, want 1/2", c.gen, c.jobs, dc.Generation, dc.JobsSeq)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = s.WaitForChanges(short, ds[0], 1, 2)
	mustErrorIs(t, err, context.DeadlineExceeded, "wait for changes up to date")
	short, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = s.WaitForChange(short, ds[0], 1)
	mustErrorIs(t, err, context.DeadlineExceeded, "wait for the generation with jobs ahead")
	_, err = s.WaitForChanges(ctx, "nosuchdevice", 0, 0)
	mustErrorIs(t, err, store.ErrNotFound, "wait for changes of an unknown device")
}

func testJobsWake(t *testing.T, s store.Store) {
	mustJobsWakeAcross(t, s, s)
}

// goWaitJobs runs WaitForChanges in a goroutine.
func goWaitJobs(ctx context.Context, s store.Store, device string, afterGen, afterJobs int64) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		dc, err := s.WaitForChanges(ctx, device, afterGen, afterJobs)
		ch <- waitResult{dc, err, time.Now()}
	}()
	return ch
}

// mustJobsWakeAcross waits through b while jobs change through a:
// CreateJob and CancelJob wake the waiters of their devices within
// WakeWithin, a job of another device does not, and a revocation ends the
// wait.
func mustJobsWakeAcross(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ds := mustEnrollN(t, a, 2)
	dev, other := ds[0], ds[1]

	var first int64 // the device's first job, canceled later
	steps := []struct {
		name   string
		change func() error
		seq    int64 // the device's JobsSeq after the change
		gen    int64
	}{
		{"create a job", func() error {
			j, err := a.CreateJob(ctx, newJob(t0), []string{dev})
			first = j.ID
			return err
		}, 1, 0},
		{"create a job of two devices", func() error { _, err := a.CreateJob(ctx, newJob(t0), ds); return err }, 2, 0},
		{"cancel a job", func() error { _, err := a.CancelJob(ctx, first, t0.Add(time.Minute)); return err }, 3, 0},
		{"put captures", func() error {
			_, err := a.PutCaptures(ctx, dev, 0, []store.Capture{monitorCapture}, t0)
			return err
		}, 3, 1},
	}
	var gen, seq int64
	for _, st := range steps {
		ch := goWaitJobs(ctx, b, dev, gen, seq)
		mustStillWaiting(t, ch, 100*time.Millisecond)
		_, err := a.CreateJob(ctx, newJob(t0), []string{other})
		mustNoError(t, err, "create a job of the other device")
		mustStillWaiting(t, ch, 100*time.Millisecond)
		changed := time.Now()
		mustNoError(t, st.change(), st.name)
		r := mustWake(t, ch, changed)
		mustNoError(t, r.err, "wait for changes after: "+st.name)
		if r.dc.JobsSeq != st.seq || r.dc.Generation != st.gen {
			t.Errorf("%s: woken with generation %d, jobs_seq %d; want %d, %d", st.name, r.dc.Generation, r.dc.JobsSeq, st.gen, st.seq)
		}
		gen, seq = r.dc.Generation, r.dc.JobsSeq
	}

	ch := goWaitJobs(ctx, b, dev, gen, seq)
	mustStillWaiting(t, ch, 100*time.Millisecond)
	revoked := time.Now()
	_, err := a.RevokeDevice(ctx, dev, t0)
	mustNoError(t, err, "revoke")
	r := mustWake(t, ch, revoked)
	mustErrorIs(t, r.err, store.ErrRevoked, "wait for changes of a device revoked meanwhile")
}

// testSharedJobsWake: a job created or canceled through one console wakes
// a long poll on the other within a second.
func testSharedJobsWake(t *testing.T, a, b store.Store) {
	mustJobsWakeAcross(t, a, b)
	mustJobsWakeAcross(t, b, a)
}

// testSharedClaimRace: claims on both consoles, one run.
func testSharedClaimRace(t *testing.T, a, b store.Store) {
	dev := mustEnrollN(t, a, 1)[0]
	for range 3 {
		j := mustCreateJob(t, a, t0, dev)
		mustClaimRace(t, []store.Store{a, b}, j.ID, dev, t0.Add(time.Minute))
	}
}

// testSharedEndRunsRace: two consoles expire and fail silent runs at the
// same time; each run ends once, with one transition.
func testSharedEndRunsRace(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	ds := mustEnrollN(t, a, 4)
	const jobs = 10
	for i := range jobs {
		j := mustCreateJob(t, a, t0, ds...)
		// Half of each job's runs are accepted and then silent.
		mustClaim(t, a, j.ID, ds[i%2], "c", t0.Add(time.Minute))
		mustClaim(t, a, j.ID, ds[2+i%2], "c", t0.Add(time.Minute))
	}
	const reason = "silent"
	counts := make([][2]int, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 4 {
		s := []store.Store{a, b}[i%2]
		wg.Go(func() {
			<-start
			for range 3 {
				ex, err := s.ExpireRuns(ctx, t0.Add(jobExpiry))
				if err != nil {
					errs[i] = err
					return
				}
				fl, err := s.FailSilentRuns(ctx, t0.Add(5*time.Minute), reason, t0.Add(jobExpiry))
				if err != nil {
					errs[i] = err
					return
				}
				counts[i][0] += len(ex)
				counts[i][1] += len(fl)
			}
		})
	}
	close(start)
	wg.Wait()
	var expired, failed int
	for i := range 4 {
		mustNoError(t, errs[i], "end runs")
		expired += counts[i][0]
		failed += counts[i][1]
	}
	if expired != 2*jobs || failed != 2*jobs {
		t.Errorf("consoles racing ended %d runs expired and %d failed, want %d each", expired, failed, 2*jobs)
	}
	js, err := b.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list jobs")
	for _, j := range js {
		for _, r := range j.Runs {
			want := map[store.RunState]int{store.RunExpired: 2, store.RunFailed: 3}[r.State] // queued, [accepted,] ended
			if n := len(r.Transitions); n != want {
				t.Errorf("job %d device %s: %s with %d transitions (%+v), want ended once", j.ID, r.Device, r.State, n, r.Transitions)
			}
		}
	}
}

// Reopen returns a function that opens a Store on one new, empty
// database, a new Store on the same database on each call: a console
// restart. The caller closes each Store before opening the next; t's
// cleanup closes them too.
type Reopen func(t *testing.T) (open func() store.Store)

// RunRestart runs the tests of a console restarting on its database.
func RunRestart(t *testing.T, reopen Reopen) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() store.Store)
	}{
		{"JobsSurviveRestart", testJobsSurviveRestart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, reopen(t))
		})
	}
}

// testJobsSurviveRestart: a console that restarts loses no job state,
// and its runs go on where they were.
func testJobsSurviveRestart(t *testing.T, open func() store.Store) {
	ctx := context.Background()
	s := open()
	ds := mustEnrollN(t, s, 2)
	j := mustCreateJob(t, s, t0, ds...)
	mustClaim(t, s, j.ID, ds[0], "c", t0.Add(time.Minute))
	mustUpdate(t, s, j.ID, ds[0], "c", store.RunUpdate{State: store.RunRunning, Packets: 3, Bytes: 300, Drops: 1, Size: 900}, t0.Add(2*time.Minute))
	ended := mustCreateJob(t, s, t0, ds[1])
	_, err := s.CancelJob(ctx, ended.ID, t0.Add(time.Minute))
	mustNoError(t, err, "cancel")
	done := mustCreateJob(t, s, t0, ds[1])
	mustClaim(t, s, done.ID, ds[1], "d", t0.Add(time.Minute))
	mustUpdate(t, s, done.ID, ds[1], "d", store.RunUpdate{State: store.RunRunning}, t0.Add(2*time.Minute))
	mustUpdate(t, s, done.ID, ds[1], "d", store.RunUpdate{State: store.RunFinished, Size: 10}, t0.Add(3*time.Minute))
	_, err = s.AttachResult(ctx, done.ID, ds[1], store.RunResult{Location: "console", Size: 10, SHA256: strings.Repeat("aa", 32), StoredAt: t0.Add(3 * time.Minute)})
	mustNoError(t, err, "attach")
	before, err := s.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list jobs")
	dc, err := s.GetCaptures(ctx, ds[1])
	mustNoError(t, err, "get captures")
	mustNoError(t, s.Close(), "close")

	s = open()
	after, err := s.ListJobs(ctx, store.ListJobsOptions{})
	mustNoError(t, err, "list jobs after the restart")
	if diff := cmp.Diff(before, after, cmpOpts...); diff != "" {
		t.Errorf("jobs after the restart (-before +after):\n%s", diff)
	}
	mustJobsSeq(t, s, ds[1], dc.JobsSeq, "after the restart")
	mustUpdate(t, s, j.ID, ds[0], "c", store.RunUpdate{State: store.RunFinished, Packets: 5}, t0.Add(4*time.Minute))
	_, err = s.ClaimRun(ctx, j.ID, ds[0], "a new attempt", t0.Add(4*time.Minute))
	mustErrorIs(t, err, store.ErrRunEnded, "claim after the restart")
	if next := mustCreateJob(t, s, t0, ds[0]); next.ID != 4 {
		t.Errorf("the first job after the restart has id %d, want 4", next.ID)
	}
	mustNoError(t, s.Close(), "close")
}
