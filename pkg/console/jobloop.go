package console

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// jobLoopInterval is how often the console expires queued runs and fails
// silent ones; sweepInterval how often it deletes results past their
// retention.
const (
	jobLoopInterval = time.Second
	sweepInterval   = time.Minute
)

// jobLoop ends, every second until ctx ends, the runs whose time is up:
// queued runs past their job's expiry become expired, and runs whose
// device stopped reporting for JobPolicy.Silence become failed. Their
// live streams end. Every console on a database runs it; the store makes
// each change once.
func (s *Server) jobLoop(ctx context.Context) {
	t := time.NewTicker(jobLoopInterval)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p := s.cfg.JobPolicy; p.Retention > 0 && time.Since(swept) >= sweepInterval {
			swept = time.Now()
			if err := s.sweepResults(ctx, s.now()); err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				s.log.Error("delete job results past their retention", "err", err)
			}
		}
		if err := s.endDueRuns(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, store.ErrClosed) {
				return
			}
			s.log.Error("end due job runs", "err", err)
		}
	}
}

// endDueRuns makes one pass of the job loop.
func (s *Server) endDueRuns(ctx context.Context) error {
	now := s.now()
	expired, err := s.cfg.Store.ExpireRuns(ctx, now)
	for _, run := range expired {
		s.live.end(run.JobID, run.Device)
		s.log.Info("job run expired", "job", run.JobID, "device_id", run.Device, "reason", run.Error)
	}
	if err != nil {
		return err
	}
	p := s.cfg.JobPolicy
	failed, err := s.cfg.Store.FailSilentRuns(ctx, now.Add(-p.Silence), p.silenceReason(), now)
	for _, run := range failed {
		s.live.end(run.JobID, run.Device)
		s.log.Warn("job run failed: its device went silent", "job", run.JobID, "device_id", run.Device,
			"silence", p.Silence)
	}
	return err
}

// sweepResults deletes the result directories (DATA/jobs/ID) of the jobs
// whose runs all ended more than JobPolicy.Retention before now. The
// jobs and runs stay in the store; a download then says the result was
// deleted. Directories of jobs the store does not know are left alone.
func (s *Server) sweepResults(ctx context.Context, now time.Time) error {
	root := filepath.Join(s.cfg.DataDir, jobsDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cutoff := now.Add(-s.cfg.JobPolicy.Retention)
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		j, err := s.cfg.Store.GetJob(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		ended, ok := jobEnded(j)
		if !ok || !ended.Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return err
		}
		s.log.Info("job results deleted after their retention", "job", id, "ended", ended, "retention", s.cfg.JobPolicy.Retention)
	}
	return nil
}

// jobEnded is when the last run of j ended; false while one has not.
func jobEnded(j store.Job) (time.Time, bool) {
	var last time.Time
	for _, r := range j.Runs {
		if !r.State.Terminal() {
			return time.Time{}, false
		}
		for _, tr := range r.Transitions {
			if tr.At.After(last) {
				last = tr.At
			}
		}
	}
	return last, true
}
