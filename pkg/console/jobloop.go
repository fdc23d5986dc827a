package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/storage"
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
		if p := s.cfg.JobPolicy; p.sweeps() && time.Since(swept) >= sweepInterval {
			swept = time.Now()
			if err := s.sweepResults(ctx, s.now()); err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				s.log.Error("delete job results past their retention or over their space", "err", err)
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

// sweepResults bounds the results in the data directory (DATA/jobs/ID).
// First by age: the directories of the jobs whose runs all ended more
// than JobPolicy.Retention before now go. Then by space: while the
// results take more than ResultsMaxBytes, or the file system has less
// than ResultsMinFree available, the results of the jobs that ended
// first are deleted, leaving a tombstone that a download answers with
// (410). Jobs and runs stay in the store. Results of jobs still running,
// and directories of jobs the store does not know, are never touched.
func (s *Server) sweepResults(ctx context.Context, now time.Time) error {
	root := filepath.Join(s.cfg.DataDir, jobsDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	p := s.cfg.JobPolicy
	cutoff := now.Add(-p.Retention)
	type result struct {
		id    int64
		dir   string
		ended time.Time
		size  int64
	}
	var ended []result
	var total int64 // every result's bytes, running jobs' too
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
		dir := filepath.Join(root, e.Name())
		size, err := dirSize(dir)
		if err != nil {
			return err
		}
		end, done := jobEnded(j)
		if done && p.Retention > 0 && end.Before(cutoff) {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			s.log.Info("job results deleted after their retention", "job", id, "ended", end, "retention", p.Retention)
			continue
		}
		total += size
		if done && size > 0 {
			ended = append(ended, result{id, dir, end, size})
		}
	}
	if p.ResultsMaxBytes <= 0 && p.ResultsMinFree.IsZero() {
		return nil
	}
	excess, limit := int64(0), ""
	if p.ResultsMaxBytes > 0 && total > p.ResultsMaxBytes {
		excess, limit = total-p.ResultsMaxBytes, fmt.Sprintf("the results within --job-results-max-bytes %s", fmtBytes(uint64(p.ResultsMaxBytes)))
	}
	if !p.ResultsMinFree.IsZero() {
		avail, fsTotal, err := diskSpace(root)
		if err != nil {
			return fmt.Errorf("free space of %s: %w", root, err)
		}
		if need := p.ResultsMinFree.Of(fsTotal) - avail; need > excess {
			excess, limit = need, fmt.Sprintf("%s free on the data directory's file system (--job-results-min-free)", minFreeText(p.ResultsMinFree))
		}
	}
	if excess <= 0 {
		return nil
	}
	slices.SortFunc(ended, func(a, b result) int { return cmp.Or(a.ended.Compare(b.ended), cmp.Compare(a.id, b.id)) })
	for _, r := range ended {
		if excess <= 0 {
			break
		}
		if err := deleteForSpace(r.dir, tombstone{DeletedAt: now.UTC(), Limit: limit}); err != nil {
			return err
		}
		excess -= r.size
		s.log.Info("job results deleted to keep "+limit+", oldest first", "job", r.id, "ended", r.ended, "bytes", r.size)
	}
	if last := s.spaceWarned.Load(); excess > 0 && now.Sub(time.Unix(0, last)) >= time.Hour {
		s.spaceWarned.Store(now.UnixNano())
		s.log.Warn("every result of an ended job is deleted and the bound is still not met: the rest is jobs still running, or other files (warned once an hour)",
			"limit", limit, "over_bytes", excess)
	}
	return nil
}

// tombstoneFile is left in a result directory whose pcaps were deleted
// for space: what a download of one of them answers.
const tombstoneFile = "deleted.json"

type tombstone struct {
	DeletedAt time.Time `json:"deleted_at"`
	Limit     string    `json:"limit"` // what was kept: "the results within --job-results-max-bytes 10.0 GiB"
}

// deleteForSpace removes the pcaps in dir and writes the tombstone (the
// directory stays, so the age sweep removes it in its time).
func deleteForSpace(dir string, t tombstone) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == tombstoneFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, tombstoneFile), b, 0o600)
}

// spaceReason is the answer to a download of a result deleted for space,
// or "" when dir has no tombstone.
func spaceReason(dir string, id int64, device string) string {
	b, err := os.ReadFile(filepath.Join(dir, tombstoneFile))
	if err != nil {
		return ""
	}
	var t tombstone
	if json.Unmarshal(b, &t) != nil {
		return ""
	}
	return fmt.Sprintf("the pcap of job %d on device %s was deleted at %s to keep %s: results are deleted oldest first", id, device, t.DeletedAt.Format(time.RFC3339), t.Limit)
}

// dirSize is the bytes of the files in dir (one level: results are files
// in their job's directory), the tombstone left out.
func dirSize(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		if e.Name() == tombstoneFile || e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// minFreeText is a Space as the flag takes it.
func minFreeText(sp storage.Space) string {
	if sp.Percent != 0 {
		return sp.String()
	}
	return fmtBytes(uint64(sp.Bytes))
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
