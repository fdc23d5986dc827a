package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/signals"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type captureFlags struct {
	ifaces      stringList
	out         string
	snaplen     uint
	count       uint64
	duration    time.Duration
	format      string
	hook        string
	direction   string
	monitor     bool
	ringSize    int
	bpfFile     string
	netns       string
	quiet       bool
	demoPackets uint64
	cpuProfile  string
	expr        string
	xdpMode     string
	wakeupBytes int
	sharedRing  bool
	pinReaders  bool
}

func parseCaptureFlags(args []string, stderr io.Writer) (*captureFlags, error) {
	f := &captureFlags{}
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.ifaces, "i", "interface to capture on (repeat for several); none: run the demo on its own veth pair")
	fs.StringVar(&f.out, "w", "", "output file, - for stdout (default ringtap.pcapng, or captures/demo.pcapng for the demo)")
	fs.UintVar(&f.snaplen, "s", capture.DefaultSnapLen, fmt.Sprintf("snapshot length: bytes kept of each frame (1-%d)", capture.MaxSnapLen))
	fs.Uint64Var(&f.count, "c", 0, "stop after this many packets")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s)")
	fs.StringVar(&f.format, "F", "pcapng", "output format: pcapng or pcap (nanosecond timestamps)")
	fs.StringVar(&f.hook, "hook", "auto", "where to capture: auto, xdp or tc (auto: xdp for ingress, tc otherwise)")
	fs.StringVar(&f.direction, "direction", "in", "in, out or inout (out and inout need tc)")
	fs.BoolVar(&f.monitor, "monitor-port", false, "SPAN/TAP port: capture at XDP, then drop every frame")
	fs.IntVar(&f.ringSize, "ring-size", capture.DefaultRingSize, "bytes of each per-CPU ring buffer (power of two)")
	fs.StringVar(&f.bpfFile, "bpf-file", "", "classic BPF program in `tcpdump -ddd` format, instead of an EXPRESSION")
	fs.StringVar(&f.netns, "netns", "", "capture in this network namespace (a path such as /run/netns/NAME)")
	fs.BoolVar(&f.quiet, "q", false, "do not print the summary")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the capture to this file (for performance work)")
	fs.StringVar(&f.xdpMode, "xdp-mode", "auto", "auto (native, generic as fallback), native or generic")
	fs.IntVar(&f.wakeupBytes, "wakeup-bytes", 0, "tuning: wake a ring's reader once this many bytes are queued (default ring size / 4)")
	fs.BoolVar(&f.sharedRing, "shared-ring", false, "tuning: one ring and one reader for all CPUs instead of one per CPU")
	fs.BoolVar(&f.pinReaders, "pin-readers", false, "tuning: pin the reader of each CPU's ring to that CPU")
	fs.Uint64Var(&f.demoPackets, "demo-packets", 1_000_000, "demo only: frames of the fast burst sent with BPF_PROG_RUN live frames")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ringtap capture -i IFACE [-i IFACE ...] [-w FILE|-] [-s SNAPLEN] [-c COUNT] [--duration D] [-F pcapng|pcap] [--hook auto|xdp|tc] [--direction in|out|inout] [--monitor-port] [--ring-size BYTES] [--xdp-mode auto|native|generic] [--bpf-file FILE] [EXPRESSION]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	f.expr = strings.Join(fs.Args(), " ")
	if f.expr != "" && f.bpfFile != "" {
		return nil, fmt.Errorf("%w: give either an EXPRESSION or --bpf-file, not both", errUsage)
	}
	if f.snaplen == 0 || f.snaplen > capture.MaxSnapLen {
		return nil, fmt.Errorf("%w: snaplen %d out of range: use 1 to %d", errUsage, f.snaplen, capture.MaxSnapLen)
	}
	return f, nil
}

func runCapture(args []string, stdout, stderr io.Writer) error {
	f, err := parseCaptureFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signals.TwoStep(context.Background(), func(os.Signal) {
		fmt.Fprintln(stderr, "ringtap: second signal, stopping now; the output file may be incomplete")
		os.Exit(130)
	})
	defer stop()
	if len(f.ifaces) == 0 {
		return runDemo(ctx, f, stdout, stderr)
	}
	if f.out == "" {
		f.out = "ringtap.pcapng"
	}
	res, err := captureTo(ctx, f, stdout, stderr, nil)
	if res != nil && !f.quiet {
		res.print(stderr)
	}
	return err
}

// captureResult is what a finished capture reports.
type captureResult struct {
	out   string
	stats capture.Stats
}

func (r *captureResult) print(w io.Writer) {
	for _, is := range r.stats.Interfaces {
		t := is.Total()
		fmt.Fprintf(w, "%s: %d packets captured, %d packets dropped by ring overflow, %d packets seen by hook (%d matched the filter)\n",
			is.Name, t.Captured, t.Dropped, t.Seen, t.Matched)
	}
	fmt.Fprintf(w, "%d packets written to %s\n", r.stats.Written, r.out)
}

// captureTo runs one capture as the flags say. ready, if not nil, is closed
// once the programs are attached and the readers run.
func captureTo(ctx context.Context, f *captureFlags, stdout, stderr io.Writer, ready chan<- struct{}) (*captureResult, error) {
	format, err := pcapio.ParseFormat(f.format)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	hook, err := capture.ParseHook(f.hook)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	dir, err := capture.ParseDirection(f.direction)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	xdpMode, err := capture.ParseXDPMode(f.xdpMode)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	filt, err := buildFilter(f.expr, f.bpfFile)
	if err != nil {
		return nil, err
	}
	// Open the output before attaching, so that an unwritable path fails
	// before anything touches the interface.
	var out io.Writer = stdout
	var file *os.File
	if f.out != "-" {
		file, err = os.Create(f.out)
		if err != nil {
			return nil, fmt.Errorf("cannot write the output file: %w", err)
		}
		defer file.Close()
		out = file
	}
	c, err := capture.Open(capture.Config{
		Interfaces: f.ifaces, Hook: hook, Direction: dir, SnapLen: uint32(f.snaplen),
		RingSize: f.ringSize, MonitorPort: f.monitor, Filter: filt, NetNS: f.netns, Count: f.count,
		XDPMode: xdpMode, WakeupBytes: f.wakeupBytes, SharedRing: f.sharedRing, PinReaders: f.pinReaders,
	})
	if err != nil {
		if file != nil {
			file.Close()
			os.Remove(f.out)
		}
		return nil, err
	}
	defer c.Close()
	w, err := pcapio.NewWriter(out, pcapio.WriterOptions{
		Format: format, Application: "ringtap " + version, Interfaces: c.Interfaces(),
	})
	if err != nil {
		return nil, fmt.Errorf("start output: %w", err)
	}
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	fmt.Fprintf(stderr, "listening on %s, hook %s, snapshot length %d bytes\n", strings.Join(f.ifaces, ","), c.HookName(), c.Config().SnapLen)
	if ready != nil {
		close(ready)
	}
	runErr := c.Run(ctx, w)
	if err := w.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("finish output: %w", err)
	}
	if file != nil {
		if err := file.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("close output: %w", err)
		}
	}
	st, serr := c.Stats()
	if serr != nil {
		slog.Warn("read counters", "error", serr)
	}
	res := &captureResult{out: f.out, stats: st}
	if f.out == "-" {
		res.out = "stdout"
	}
	return res, runErr
}
