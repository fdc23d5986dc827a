package jobrunner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// run is one run of a job on this agent: its record and the goroutines
// that carry it (see the package documentation).
type run struct {
	r   *Runner
	id  int64
	dir string
	log *slog.Logger

	budget runBudget    // guarded by r.mu
	size   atomic.Int64 // the capture file's size so far

	cancelOnce sync.Once
	canceled   chan struct{} // closed when an admin's cancel is seen
	endOnce    sync.Once
	ended      chan struct{} // closed when the console ended the run
	liveKick   chan struct{} // the console's live_wanted may have changed
	reportKick chan struct{} // a state transition to report now

	mu        sync.Mutex
	rec       record
	job       Job             // while capturing
	progress  jobapi.Progress // the last reported
	pending   string          // the state transition to report: running, uploading
	endedWhy  string
	foreign   bool // another claim holds the run: its result is not ours to give
	lastErr   string
	uploaded  int64
	liveWant  bool
	liveOff   time.Time // when live_wanted last turned false
	livePush  bool      // a push is open
	liveDrops uint64
}

func (r *Runner) newRun(rec *record) *run {
	rn := &run{r: r, id: rec.ID, dir: runDir(r.opts.Dir, rec.ID), rec: *rec,
		log:      r.log.With("job", rec.ID),
		canceled: make(chan struct{}), ended: make(chan struct{}), liveKick: make(chan struct{}, 1),
		reportKick: make(chan struct{}, 1)}
	rn.progress = rec.Progress
	rn.size.Store(rec.Size)
	return rn
}

// busy: the run takes one of max_concurrent (claiming or capturing).
func (rn *run) busy() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.rec.State == stateClaiming || rn.rec.State == stateCapturing
}

func (rn *run) state() string {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.rec.State
}

// save changes the record with f and writes it.
func (rn *run) save(f func(*record)) error {
	rn.mu.Lock()
	f(&rn.rec)
	rec := rn.rec
	rn.mu.Unlock()
	return rec.save(rn.dir)
}

func (rn *run) setErr(err error) {
	rn.mu.Lock()
	rn.lastErr = oneLine(err)
	rn.mu.Unlock()
}

// requestCancel is an admin's cancel, seen by from.
func (rn *run) requestCancel(from string) {
	rn.cancelOnce.Do(func() {
		rn.log.Info("cancel requested by an admin", "seen_by", from)
		close(rn.canceled)
	})
}

// endByConsole is the console ending the run (410, 404): why is its
// answer. The capture stops; its result is still offered.
func (rn *run) endByConsole(why string) {
	rn.endOnce.Do(func() {
		rn.mu.Lock()
		rn.endedWhy = why
		rn.mu.Unlock()
		rn.log.Warn("the console ended the run: the capture stops, its result is still offered to the console", "answer", why)
		close(rn.ended)
	})
}

// claimedElsewhere is a 409 of another claim: the run is another
// attempt's, so the capture stops and nothing is uploaded.
func (rn *run) claimedElsewhere(why string) {
	rn.endOnce.Do(func() {
		rn.mu.Lock()
		rn.endedWhy, rn.foreign = why, true
		rn.mu.Unlock()
		rn.log.Warn("another attempt holds the run: the capture stops and is not uploaded", "answer", why)
		close(rn.ended)
	})
}

// isForeign: claimedElsewhere was seen.
func (rn *run) isForeign() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.foreign
}

func (rn *run) wasEnded() bool {
	select {
	case <-rn.ended:
		return true
	default:
		return false
	}
}

// control takes the console's answer about the run.
func (rn *run) control(rc jobapi.RunControl) {
	if rc.CancelRequested {
		rn.requestCancel("the console's answer")
	}
	switch rc.State {
	case "finished", "failed", "canceled", "expired":
		rn.endByConsole("the run is " + rc.State + " on the console")
	}
	rn.mu.Lock()
	switch {
	case rc.LiveWanted:
		rn.liveWant = true
	case rn.liveWant:
		rn.liveWant, rn.liveOff = false, time.Now()
	}
	rn.mu.Unlock()
	select {
	case rn.liveKick <- struct{}{}:
	default:
	}
}

// run carries the run from its state to its end, then the runner
// forgets it.
func (rn *run) run(ctx context.Context) {
	done := rn.drive(ctx)
	rn.r.forget(rn, done)
}

// drive returns true when the run is over here (its directory removed),
// false when it is left for the next start.
func (rn *run) drive(ctx context.Context) bool {
	// Delivery goes on for StopGrace after ctx ends.
	dctx, cancel := graceContext(ctx, rn.r.opts.StopGrace)
	defer cancel()
	switch rn.state() {
	case stateClaiming:
		ok, over := rn.claim(ctx)
		if !ok {
			return over
		}
	case stateCapturing:
		rn.recoverCapture()
	}
	// The progress reports run from the capture's start (or the
	// resumed upload's) until the end is sent.
	rctx, cancelReports := context.WithCancel(dctx)
	var wg sync.WaitGroup
	var once sync.Once
	startReports := func() {
		once.Do(func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rn.reports(rctx)
			}()
		})
	}
	stopReports := func() {
		cancelReports()
		wg.Wait()
	}
	defer stopReports()
	if rn.state() == stateClaiming {
		if ctx.Err() != nil {
			return false // claimed: the next start captures
		}
		rn.capture(ctx, startReports)
	}
	if rn.state() == stateUploading {
		startReports()
	}
	return rn.deliver(dctx, stopReports)
}

// graceContext is a context that ends grace after ctx does.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var t *time.Timer
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		t = time.AfterFunc(grace, cancel)
		mu.Unlock()
	})
	return g, func() {
		stop()
		mu.Lock()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// claim sends the claim until the console answers. ok: claimed; over:
// the run is dropped (another claim has it, it ended, it is not ours).
func (rn *run) claim(ctx context.Context) (ok, over bool) {
	if err := os.MkdirAll(rn.dir, 0o700); err != nil {
		rn.log.Error("the run cannot be claimed: its directory cannot be created", "error", err)
		rn.setErr(err)
		return false, true
	}
	// The token is on disk before the console sees it.
	if err := rn.save(func(*record) {}); err != nil {
		rn.log.Error("the run cannot be claimed: its record cannot be written", "error", err)
		rn.setErr(err)
		os.RemoveAll(rn.dir)
		return false, true
	}
	rn.mu.Lock()
	token := rn.rec.Claim
	rn.mu.Unlock()
	var got jobapi.AgentJob
	err := rn.r.retry(ctx, rn.log, "claim", func(ctx context.Context) error {
		_, err := rn.r.do(ctx, request{method: http.MethodPost, path: jobapi.Path(jobapi.ClaimPath, rn.id),
			in: jobapi.ClaimRequest{Claim: token}, out: &got, timeout: rn.r.opts.RequestTimeout})
		return err
	})
	switch {
	case err == nil && got.Claim != "" && got.Claim != token:
		err = fmt.Errorf("the console answered the claim with another claim token")
	case err == nil:
		if got.ID == rn.id {
			rn.mu.Lock()
			got.Claim = token
			rn.rec.Job = got
			rn.mu.Unlock()
		}
		rn.log.Info("run claimed", "claim", token, "interfaces", got.Interfaces, "filter", got.Filter, "duration", time.Duration(got.Duration),
			"max_packets", got.MaxPackets, "max_bytes", got.MaxBytes, "destination", got.Destination)
		return true, false
	case ctx.Err() != nil:
		return false, false // the token stays on disk: the next start claims again with it
	}
	rn.setErr(err)
	rn.log.Info("the run is not for this agent: dropped", "answer", oneLine(err))
	rn.r.stats.dropped.Add(1)
	if err := os.RemoveAll(rn.dir); err != nil {
		rn.log.Error("remove the run's directory", "error", err)
	}
	return false, true
}

// fail ends a claimed run without a capture: it is finished failed (or
// canceled) with reason.
func (rn *run) conclude(outcome, reason string) {
	rn.log.Warn("the run ends before its capture starts", "outcome", outcome, "reason", reason)
	if err := rn.save(func(rec *record) {
		rec.State, rec.Outcome, rec.Reason, rec.StoppedAt = stateFinishing, outcome, reason, time.Now().UTC()
	}); err != nil {
		rn.log.Error("write the run's record", "error", err)
	}
}

// capture checks what the run needs, starts its capture, waits for a
// stop condition and stops it. The record ends in uploading (a file) or
// finishing (none).
func (rn *run) capture(ctx context.Context, startReports func()) {
	rn.mu.Lock()
	j := rn.rec.Job
	rn.mu.Unlock()
	if j.CancelRequested {
		rn.conclude(outcomeCanceled, ReasonCanceled)
		return
	}
	if len(j.Interfaces) == 0 {
		rn.conclude(outcomeFailed, fmt.Sprintf("job %d names no interface to capture on", rn.id))
		return
	}
	if err := rn.r.checkDestination(rn.id, j.Destination); err != nil {
		rn.conclude(outcomeFailed, err.Error())
		return
	}
	var flt *capture.Filter
	if strings.TrimSpace(j.Filter) != "" {
		f, err := filter.ForCapture(j.Filter)
		if err != nil {
			rn.conclude(outcomeFailed, fmt.Sprintf("job %d's filter %q does not compile on the agent: %s", rn.id, j.Filter, oneLine(err)))
			return
		}
		flt = f
	}
	maxBytes, err := rn.r.reserve(rn)
	if err != nil {
		rn.conclude(outcomeFailed, err.Error())
		return
	}
	path := filepath.Join(rn.dir, CaptureFile)
	if err := rn.save(func(rec *record) {
		rec.State, rec.StartedAt, rec.PID = stateCapturing, time.Now().UTC(), os.Getpid()
	}); err != nil {
		rn.r.release(rn, 0)
		rn.conclude(outcomeFailed, fmt.Sprintf("the agent cannot write the run's record: %s", oneLine(err)))
		return
	}
	job, err := rn.r.opts.Capture.StartJob(pcapmgr.JobSpec{
		Name: fmt.Sprintf("job-%d", rn.id), Interfaces: j.Interfaces, Filter: flt, SnapLen: j.SnapLen,
		Path: path, MaxPackets: j.MaxPackets, MaxBytes: maxBytes, Application: rn.r.opts.Application,
	})
	if err != nil {
		rn.r.release(rn, 0)
		os.Remove(path)
		rn.conclude(outcomeFailed, fmt.Sprintf("the capture did not start: %s", oneLine(err)))
		return
	}
	rn.mu.Lock()
	rn.job, rn.pending = job, "running"
	rn.mu.Unlock()
	startReports()
	rn.r.stats.running.Add(1)
	rn.log.Info("run capturing", "file", path, "max_bytes", maxBytes)

	wctx, stopHelpers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		rn.cancelChecks(wctx)
	}()
	go func() {
		defer wg.Done()
		rn.live(wctx, job)
	}()
	outcome, reason := rn.wait(ctx, job, time.Duration(j.Duration))
	stopped := time.Now()
	final, stopErr := job.Stop()
	stopHelpers()
	wg.Wait()
	rn.r.stats.running.Add(-1)
	if stopErr != nil {
		rn.log.Error("the capture file was not finished cleanly", "error", stopErr)
		if outcome == outcomeFinished {
			outcome, reason = outcomeFailed, fmt.Sprintf("the capture file could not be finished: %s", oneLine(stopErr))
		}
	}
	prog := jobapi.Progress{Packets: final.Packets, Bytes: final.Bytes, Drops: final.Drops, Size: final.Size}
	size, sum, err := hashFile(path)
	if err != nil {
		rn.log.Error("the capture file cannot be read: the run ends without a result", "error", err)
		rn.r.release(rn, 0)
		rn.mu.Lock()
		rn.job, rn.progress = nil, prog
		rn.mu.Unlock()
		if outcome != outcomeEnded {
			outcome, reason = outcomeFailed, fmt.Sprintf("the capture file cannot be read: %s", oneLine(err))
		}
		rn.finishWithout(outcome, reason, prog, stopped)
		return
	}
	prog.Size = uint64(size)
	rn.size.Store(size)
	rn.r.release(rn, size)
	rn.mu.Lock()
	rn.job, rn.progress, rn.pending = nil, prog, "uploading"
	rn.mu.Unlock()
	rn.reportNow()
	if err := rn.save(func(rec *record) {
		rec.State, rec.StoppedAt, rec.Outcome, rec.Reason = stateUploading, stopped.UTC(), outcome, reason
		rec.Progress, rec.HasFile, rec.Size, rec.SHA256 = prog, true, size, sum
	}); err != nil {
		rn.log.Error("write the run's record: a restart now would take the run for one that was killed", "error", err)
	}
	rn.log.Info("run captured", "outcome", outcome, "reason", reason, "packets", prog.Packets, "bytes", prog.Bytes,
		"drops", prog.Drops, "size", size, "sha256", sum)
}

// finishWithout records an end without a result file.
func (rn *run) finishWithout(outcome, reason string, prog jobapi.Progress, at time.Time) {
	if err := rn.save(func(rec *record) {
		rec.State, rec.StoppedAt, rec.Outcome, rec.Reason, rec.Progress, rec.HasFile = stateFinishing, at.UTC(), outcome, reason, prog, false
	}); err != nil {
		rn.log.Error("write the run's record", "error", err)
	}
}

// wait returns the end of the capture: the first stop condition.
func (rn *run) wait(ctx context.Context, job Job, d time.Duration) (outcome, reason string) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return outcomeFinished, ""
	case <-job.LimitReached():
		return outcomeFinished, ""
	case <-job.Done():
		if err := job.Err(); err != nil && ctx.Err() == nil {
			return outcomeFailed, fmt.Sprintf("the capture stopped: %s", oneLine(err))
		}
		// Stopped by the pcap manager, which does so when the agent stops.
		return outcomeFailed, ReasonStopped
	case <-rn.canceled:
		return outcomeCanceled, ReasonCanceled
	case <-rn.ended:
		rn.mu.Lock()
		defer rn.mu.Unlock()
		return outcomeEnded, rn.endedWhy
	case <-ctx.Done():
		return outcomeFailed, ReasonStopped
	}
}

// cancelChecks asks the console about the run every CancelInterval ±
// CancelJitter until ctx ends.
func (rn *run) cancelChecks(ctx context.Context) {
	o := rn.r.opts
	for {
		d := time.Duration(float64(o.CancelInterval) * (1 + o.CancelJitter*(2*o.Jitter()-1)))
		if !sleep(ctx, d) {
			return
		}
		var rc jobapi.RunControl
		_, err := rn.r.do(ctx, request{method: http.MethodGet, path: jobapi.Path(jobapi.RunPath, rn.id), out: &rc,
			timeout: o.RequestTimeout})
		switch code := statusOf(err); {
		case err == nil:
			rn.control(rc)
		case ctx.Err() != nil:
			return
		case code == http.StatusGone || code == http.StatusNotFound:
			rn.endByConsole(oneLine(err))
		default:
			rn.log.Debug("cancel check failed", "error", oneLine(err))
		}
	}
}

// reports sends the progress every ProgressInterval until ctx ends: the
// capture's counters while it runs, then the final ones, with the state
// transition pending (running, uploading). A failure waits a backoff.
func (rn *run) reports(ctx context.Context) {
	failures := 0
	for {
		err := rn.report(ctx)
		wait := rn.r.opts.ProgressInterval
		switch code := statusOf(err); {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return
		case code == http.StatusConflict:
			rn.claimedElsewhere(oneLine(err))
			return
		case code == http.StatusGone || code == http.StatusNotFound:
			rn.endByConsole(oneLine(err))
			return
		case code == http.StatusUnprocessableEntity:
			rn.log.Warn("the console refused the run's state change", "error", oneLine(err))
			rn.mu.Lock()
			rn.pending = ""
			rn.mu.Unlock()
		default:
			failures++
			wait = max(wait, rn.r.backoff(failures))
			if failures == 1 || failures%10 == 0 {
				rn.log.Warn("progress report failed: retrying", "error", oneLine(err), "failures", failures, "retry_in", wait.Round(time.Millisecond))
			}
			rn.setErr(err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-rn.reportKick:
			t.Stop()
		}
	}
}

// reportNow wakes the reports: a state transition is pending.
func (rn *run) reportNow() {
	select {
	case rn.reportKick <- struct{}{}:
	default:
	}
}

// report sends one progress report.
func (rn *run) report(ctx context.Context) error {
	rn.mu.Lock()
	if rn.job != nil {
		p := rn.job.Progress()
		rn.progress = jobapi.Progress{Packets: p.Packets, Bytes: p.Bytes, Drops: p.Drops, Size: p.Size}
		rn.size.Store(int64(p.Size))
	}
	req := jobapi.ProgressRequest{Claim: rn.rec.Claim, State: rn.pending, Progress: rn.progress}
	rn.mu.Unlock()
	var rc jobapi.RunControl
	_, err := rn.r.do(ctx, request{method: http.MethodPost, path: jobapi.Path(jobapi.ProgressPath, rn.id),
		in: req, out: &rc, timeout: rn.r.opts.RequestTimeout})
	if err != nil {
		return err
	}
	rn.mu.Lock()
	if rn.pending == req.State {
		rn.pending = ""
	}
	rn.mu.Unlock()
	if req.State != "" {
		rn.log.Info("run "+req.State+" on the console", "packets", req.Packets, "size", req.Size)
	}
	rn.control(rc)
	return nil
}

// deliver uploads the result, ends the run on the console and removes
// its directory; stopReports ends the progress reports first. It returns
// false when ctx ended first: the run is left for the next start.
func (rn *run) deliver(ctx context.Context, stopReports func()) bool {
	rn.mu.Lock()
	rec := rn.rec
	rn.mu.Unlock()
	if rec.State == stateUploading {
		if rec.HasFile && !rec.Uploaded && !rn.isForeign() {
			location, err := rn.upload(ctx, rec)
			rec.Location = location
			switch {
			case err == nil:
				rn.log.Info("result uploaded", "destination", rec.Job.Destination, "size", rec.Size, "sha256", rec.SHA256)
			case ctx.Err() != nil:
				rn.log.Warn("the upload did not make it before the agent stopped: the next start uploads the result", "dir", rn.dir)
				return false
			case rec.Outcome == outcomeEnded || rn.wasEnded():
				rn.log.Warn("the console took no result of a run it ended", "error", oneLine(err))
			default:
				rn.setErr(err)
				rn.log.Error("the result cannot be uploaded: the run ends failed without it", "error", oneLine(err))
				if statusOf(err) == http.StatusGone {
					rn.endByConsole(oneLine(err))
				}
				rec.Outcome, rec.Reason = outcomeFailed, fmt.Sprintf("the result could not be uploaded: %s", oneLine(err))
			}
			rec.Uploaded = err == nil
		}
		rec.State = stateFinishing
		if err := rn.save(func(r *record) {
			r.State, r.Outcome, r.Reason, r.Uploaded, r.Location = rec.State, rec.Outcome, rec.Reason, rec.Uploaded, rec.Location
		}); err != nil {
			rn.log.Error("write the run's record", "error", err)
		}
	}
	stopReports()
	if rec.Outcome == outcomeEnded || rn.wasEnded() {
		rn.r.stats.dropped.Add(1)
		rn.remove()
		return true
	}
	if over, ok := rn.sendPending(ctx); !ok {
		return over
	}
	req := jobapi.FinishRequest{Claim: rec.Claim, State: rec.Outcome, Progress: rec.Progress}
	if rec.Outcome != outcomeFinished {
		req.Error = rec.Reason
	}
	if rec.Uploaded && rec.Location != "" {
		req.Result = &jobapi.Result{Location: rec.Location, Size: rec.Size, SHA256: rec.SHA256}
	}
	err := rn.r.retry(ctx, rn.log, "finish", func(ctx context.Context) error {
		_, err := rn.r.do(ctx, request{method: http.MethodPost, path: jobapi.Path(jobapi.FinishPath, rn.id), in: req,
			timeout: rn.r.opts.RequestTimeout})
		return err
	})
	switch {
	case err == nil:
		rn.r.stats.finished(rec.Outcome)
		rn.log.Info("run ended", "state", rec.Outcome, "reason", req.Error, "packets", rec.Progress.Packets, "size", rec.Progress.Size)
	case ctx.Err() != nil:
		rn.log.Warn("the run's end did not reach the console before the agent stopped: the next start sends it", "dir", rn.dir)
		return false
	default:
		rn.r.stats.dropped.Add(1)
		rn.log.Warn("the console did not take the run's end: dropped", "state", rec.Outcome, "error", oneLine(err))
	}
	rn.remove()
	return true
}

// sendPending reports a state transition the reports did not get
// through (running or uploading), so that the end is one the console
// takes. ok false: the run is over (over) or left for the next start.
func (rn *run) sendPending(ctx context.Context) (over, ok bool) {
	rn.mu.Lock()
	pending := rn.pending
	rn.mu.Unlock()
	if pending == "" {
		return false, true
	}
	err := rn.r.retry(ctx, rn.log, "progress", rn.report)
	switch code := statusOf(err); {
	case err == nil, code == http.StatusUnprocessableEntity:
		return false, true
	case ctx.Err() != nil:
		return false, false
	default:
		rn.r.stats.dropped.Add(1)
		rn.log.Warn("the console ended the run before its end was sent: dropped", "error", oneLine(err))
		rn.remove()
		return true, false
	}
}

// remove deletes the run's directory: the console has what it gets.
func (rn *run) remove() {
	rn.r.release(rn, 0)
	if err := os.RemoveAll(rn.dir); err != nil {
		rn.log.Error("remove the run's directory", "error", err)
	}
}

// upload sends the result to its destination. It returns the object's
// URL for an S3 destination, "" for the console's (which records the
// upload itself).
func (rn *run) upload(ctx context.Context, rec record) (string, error) {
	if rec.Job.Destination == "" || rec.Job.Destination == jobapi.DestinationConsole {
		return "", rn.uploadConsole(ctx, rec)
	}
	return rn.uploadS3(ctx, rec)
}

// status is the run's RunStatus.
func (rn *run) status() RunStatus {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rec := rn.rec
	s := RunStatus{ID: rn.id, State: rec.State, Interfaces: rec.Job.Interfaces, Filter: rec.Job.Filter,
		Destination: rec.Job.Destination, Progress: rn.progress, StartedAt: rec.StartedAt,
		Outcome: rec.Outcome, Reason: rec.Reason, Uploaded: rn.uploaded, Live: rn.livePush, LastError: rn.lastErr}
	if s.Interfaces == nil {
		s.Interfaces = []string{}
	}
	if rec.Uploaded {
		s.Uploaded = rec.Size
	}
	return s
}

// errNoFile: the result file is not there.
var errNoFile = errors.New("the capture file is gone")
