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
	// Seen and Records are the hook's program counters: frames it ran
	// on and ring records it wrote (one per frame, however many captures
	// matched it). RingDrops: records lost to a full ring. With -separate
	// they are summed over the N programs: each runs on every frame and
	// writes a record of its own for every frame its capture matches.
	Seen      uint64 `json:"seen"`
	Records   uint64 `json:"records"`
	RingDrops uint64 `json:"ring_drops"`
	// Engines: how many capture.Engines ran the captures (1, or N with
	// -separate).
	Engines int `json:"engines"`
}

// workerHook reads the worker's -hook: xdp (what the benchmark measured
// first) or tc (TCX ingress).
func workerHook(s string) (capture.Hook, error) {
	switch s {
	case "xdp":
		return capture.HookXDP, nil
	case "tc":
		return capture.HookTC, nil
	}
	return 0, fmt.Errorf("capture-worker hook %q: use xdp or tc", s)
}

// RunWorker is the capture-worker subcommand: it starts one capture per
// -filter on -i at -hook (xdp, or tc: TCX ingress) with an Engine, each
// writing a pcapng file in -dir through a storage.Recorder, prints
// "listening on" to stderr once every capture is attached, and when ctx
// ends stops them (draining), closes the files and prints a WorkerReport on
// stdout.
//
// With -separate each capture gets an Engine of its own (LayoutSeparate):
// N programs on the hook, each with its own rings, as TCX multi-attach
// would run them. Only the last one started (the last in the TCX chain)
// drops frames for -monitor-port: a drop ends the chain, so an earlier one
// would keep the frame from the captures after it.
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
		hookName = fs.String("hook", "xdp", "hook: xdp, or tc (TCX ingress)")
		separate = fs.Bool("separate", false, "one Engine, so one program and one set of rings, per capture")
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
	hook, err := workerHook(*hookName)
	if err != nil {
		return err
	}
	if *separate && hook != capture.HookTC {
		return errors.New("capture-worker -separate needs -hook tc: an interface takes one XDP program")
	}
	var engines []*capture.Engine
	defer func() {
		for _, e := range engines {
			_ = e.Close()
		}
	}()
	engine := func() (*capture.Engine, error) {
		if len(engines) > 0 && !*separate {
			return engines[0], nil
		}
		e, err := capture.NewEngine(capture.EngineOptions{NetNS: *netns, RingSize: *ringSize, Logger: slog.New(slog.NewTextHandler(stderr, nil))})
		if err != nil {
			return nil, err
		}
		engines = append(engines, e)
		return e, nil
	}
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
		e, err := engine()
		if err != nil {
			rec.Close()
			return err
		}
		drop := *monitor && (!*separate || i == len(filters)-1)
		c, err := e.Start(capture.Spec{
			Name: fmt.Sprintf("c%02d", i), Interfaces: []string{*iface}, Hook: hook, Direction: capture.DirIn,
			SnapLen: uint32(*snap), Filter: f, MonitorPort: drop,
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
	rep := WorkerReport{Engines: len(engines)}
	k := 0 // InterfaceInfo's counters by program: XDP, TC ingress, TC egress
	if hook == capture.HookTC {
		k = 1
	}
	for _, e := range engines {
		for _, info := range e.Interfaces() {
			if info.Name == *iface {
				rep.Seen += info.Seen[k]
				rep.Records += info.Records[k]
				rep.RingDrops += info.RingDrops[k]
			}
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
