package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/filter"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

// WorkerCommand is the hidden subcommand of ringtap-bench that runs the
// ringtap side of the multi-capture benchmark in a process of its own, so
// that its CPU time is accounted apart from the generator's.
const WorkerCommand = "capture-worker"

// WorkerCapture is one capture's figures at the worker's end.
type WorkerCapture struct {
	Filter     string `json:"filter"`
	File       string `json:"file"`
	Written    uint64 `json:"written"`     // handed to the recorder
	Matched    uint64 `json:"matched"`     // the filter accepted
	Captured   uint64 `json:"captured"`    // reached the ring
	RingDrops  uint64 `json:"ring_drops"`  // matched, ring full
	WriteDrops uint64 `json:"write_drops"` // recorder queue full
}

// WorkerReport is what the worker prints as JSON on stdout when it ends.
type WorkerReport struct {
	Captures []WorkerCapture `json:"captures"`
	// Seen and Records are the XDP program's counters: frames it ran
	// on and ring records it wrote (one per frame, however many captures
	// matched it). RingDrops: records lost to a full ring.
	Seen      uint64 `json:"seen"`
	Records   uint64 `json:"records"`
	RingDrops uint64 `json:"ring_drops"`
}

// RunWorker is the capture-worker subcommand: it starts one capture per
// -filter on -i with an Engine, each writing a pcapng file in -dir through a
// storage.Recorder, prints "listening on" to stderr once every capture is
// attached, and when ctx ends stops them (draining), closes the files and
// prints a WorkerReport on stdout.
func RunWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(WorkerCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		netns    = fs.String("netns", "", "network namespace path")
		iface    = fs.String("i", "", "interface")
		snap     = fs.Int("s", 128, "snapshot length")
		ringSize = fs.Int("ring-size", 8<<20, "per-CPU ring size")
		monitor  = fs.Bool("monitor-port", false, "drop frames after capture")
		dir      = fs.String("dir", "", "output directory")
		filters  []string
	)
	fs.Func("filter", "a capture filter (repeatable: one capture each)", func(s string) error {
		filters = append(filters, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *iface == "" || *dir == "" || len(filters) == 0 {
		return errors.New("capture-worker needs -i, -dir and at least one -filter")
	}
	e, err := capture.NewEngine(capture.EngineOptions{NetNS: *netns, RingSize: *ringSize, Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return err
	}
	defer e.Close()
	type running struct {
		c   *capture.Capture
		rec *storage.Recorder
		wc  WorkerCapture
	}
	var rs []*running
	var errs []error
	defer func() {
		for _, r := range rs {
			_ = r.c.Stop()
			_ = r.rec.Close()
		}
	}()
	for i, expr := range filters {
		f, err := filter.ForCapture(expr)
		if err != nil {
			return fmt.Errorf("filter %q: %w", expr, err)
		}
		path := filepath.Join(*dir, fmt.Sprintf("c%02d.pcapng", i))
		rec, err := storage.NewRecorder(storage.Options{
			File: path, Format: pcapio.FormatPCAPNG, Application: "ringtap-bench " + WorkerCommand,
			Interfaces: []pcapio.Interface{{Name: *iface, LinkType: 1, SnapLen: uint32(*snap)}},
			Capture:    fmt.Sprintf("c%02d", i),
		})
		if err != nil {
			return fmt.Errorf("output %s: %w", path, err)
		}
		c, err := e.Start(capture.Spec{
			Name: fmt.Sprintf("c%02d", i), Interfaces: []string{*iface}, Hook: capture.HookXDP,
			SnapLen: uint32(*snap), Filter: f, MonitorPort: *monitor,
		}, rec)
		if err != nil {
			rec.Close()
			return fmt.Errorf("start capture %d (%s): %w", i, expr, err)
		}
		rs = append(rs, &running{c: c, rec: rec, wc: WorkerCapture{Filter: expr, File: path}})
	}
	fmt.Fprintf(stderr, "listening on %s, %d captures\n", *iface, len(rs))
	// A capture ends early only on an error (say, the interface went
	// away): stop them all then.
	ended := make(chan struct{}, len(rs))
	for _, r := range rs {
		go func() {
			select {
			case <-r.c.Done(): // closed by Stop below at the latest
				ended <- struct{}{}
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-ended:
	}
	var rep WorkerReport
	for _, info := range e.Interfaces() {
		if info.Name == *iface {
			rep.Seen, rep.Records, rep.RingDrops = info.Seen[0], info.Records[0], info.RingDrops[0]
		}
	}
	for _, r := range rs {
		if err := r.c.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r.c.Name(), err))
		}
		if err := r.c.Err(); err != nil {
			errs = append(errs, fmt.Errorf("capture %s: %w", r.c.Name(), err))
		}
		if err := r.rec.Close(); err != nil {
			errs = append(errs, fmt.Errorf("finish %s: %w", r.wc.File, err))
		}
		st, err := r.c.Stats()
		if err != nil {
			errs = append(errs, fmt.Errorf("counters of %s: %w", r.c.Name(), err))
		}
		r.wc.Written = st.Written
		for _, is := range st.Interfaces {
			t := is.Total()
			r.wc.Matched += t.Matched
			r.wc.Captured += t.Captured
			r.wc.RingDrops += t.Lost()
		}
		r.wc.WriteDrops = r.rec.Stats().WriteDrops
		rep.Captures = append(rep.Captures, r.wc)
	}
	rs = nil
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		errs = append(errs, fmt.Errorf("write report: %w", err))
	}
	return errors.Join(errs...)
}
