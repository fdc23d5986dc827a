package jobrunner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/storage"
)

// spoolName is the export spool of run id, under export.spool.
func spoolName(id int64) string { return fmt.Sprintf("job-%d", id) }

// exportConfig is the export.Config of run id's S3 destination: the
// agent's export section with the destination's bucket and prefix.
func (r *Runner) exportConfig(id int64, dest string) (export.Config, error) {
	exp := r.opts.Export()
	if exp == nil {
		return export.Config{}, fmt.Errorf("job %d's result goes to %s but the agent's config has no export section: add export: to the agent's config file (with the store's endpoint; export: {} for AWS S3)", id, dest)
	}
	cfg, err := exp.ExportConfig(dest, false, spoolName(id))
	if err != nil {
		return cfg, fmt.Errorf("job %d's destination %s: %w", id, dest, err)
	}
	cfg.Host = r.opts.Host
	cfg.Logger = r.log.With("job", id)
	return cfg, nil
}

// checkDestination refuses, before the capture, a destination the agent
// cannot deliver to.
func (r *Runner) checkDestination(id int64, dest string) error {
	switch {
	case dest == "" || dest == jobapi.DestinationConsole:
		return nil
	case strings.HasPrefix(dest, "s3://"):
		_, err := r.exportConfig(id, dest)
		return err
	}
	return fmt.Errorf("job %d's destination %q is neither console nor an s3:// URL: the agent cannot deliver it", id, dest)
}

// uploadS3 hands the result to an exporter of its own (pkg/export, its
// spool export.spool/job-ID) and waits until the store has it: the
// exporter retries with backoff, and its spool survives a restart
// (exactly once: the object key is decided at the first Enqueue).
//
// It returns the object's URL, for the run's end.
func (rn *run) uploadS3(ctx context.Context, rec record) (string, error) {
	cfg, err := rn.r.exportConfig(rn.id, rec.Job.Destination)
	if err != nil {
		return "", err
	}
	x, err := export.New(cfg)
	if err != nil {
		return "", err
	}
	defer x.Close()
	path, err := filepath.Abs(filepath.Join(rn.dir, CaptureFile))
	if err != nil {
		return "", err
	}
	end := rec.StoppedAt
	if end.IsZero() {
		end = time.Now().UTC()
	}
	err = x.Enqueue(storage.FinishedFile{
		Path: path, Size: rec.Size, Packets: rec.Progress.Packets, Start: rec.StartedAt, End: end,
		Interfaces: rec.Job.Interfaces, Capture: spoolName(rn.id), Format: "pcapng",
	})
	if err != nil {
		return "", err
	}
	location, _ := x.Location(path)
	uctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = x.Run(uctx)
	}()
	t := time.NewTicker(100 * time.Millisecond)
	for x.Pending(path) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	t.Stop()
	cancel()
	wg.Wait()
	if x.Pending(path) {
		return "", ctx.Err()
	}
	if s := x.Stats(); s.FilesLost > 0 {
		return "", errors.New("the exporter lost the capture file before it was uploaded")
	}
	rn.r.stats.uploadBytes.Add(uint64(rec.Size))
	rn.setUploaded(rec.Size)
	if err := x.Close(); err != nil {
		rn.log.Warn("close the job's exporter", "error", err)
	}
	if err := os.RemoveAll(cfg.Spool); err != nil {
		rn.log.Warn("remove the job's export spool", "spool", cfg.Spool, "error", err)
	}
	return location, nil
}
