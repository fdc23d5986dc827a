package console

import (
	"context"
	"errors"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// jobLoopInterval is how often the console expires queued runs and fails
// silent ones.
const jobLoopInterval = time.Second

// jobLoop ends, every second until ctx ends, the runs whose time is up:
// queued runs past their job's expiry become expired, and runs whose
// device stopped reporting for JobPolicy.Silence become failed. Their
// live streams end. Every console on a database runs it; the store makes
// each change once.
func (s *Server) jobLoop(ctx context.Context) {
	t := time.NewTicker(jobLoopInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
