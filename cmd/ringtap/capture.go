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
	"github.com/ringtap/ringtap/pkg/storage"
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

	// Output: rotation, compression, retention.
	fileSize          string // -C
	fileAge           string // -G
	fileCount         int    // -W
	postrotate        string // -z
	postrotateTimeout time.Duration
	nameTemplate      string
	compress          string
	compressLevel     int
	frameSize         string
	maxBytes          string
	maxAge            string
	minFree           string
	export            exportFlags     // -w s3://
	set               map[string]bool // flags given on the command line
}

func parseCaptureFlags(args []string, stderr io.Writer) (*captureFlags, error) {
	f := &captureFlags{}
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&f.ifaces, "i", "interface to capture on (repeat for several); none: run the demo on its own veth pair")
	fs.StringVar(&f.out, "w", "", "output file, DIR/ for a directory of rotated files, - for stdout (default ringtap.pcapng, or captures/demo.pcapng for the demo)")
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
	fs.StringVar(&f.fileSize, "C", "", "rotate before a file exceeds this size: millions of bytes as tcpdump, or with a unit (500MB, 1GiB)")
	fs.StringVar(&f.fileAge, "G", "", "rotate every this many seconds (or a duration: 15m, 1h)")
	fs.IntVar(&f.fileCount, "W", 0, "with -C or -G: keep the newest COUNT files, deleting the oldest")
	fs.StringVar(&f.postrotate, "z", "", "run CMD FILE for every finished file (tcpdump's postrotate command)")
	fs.DurationVar(&f.postrotateTimeout, "postrotate-timeout", storage.DefaultPostrotateTimeout, "kill the -z command after this long")
	fs.StringVar(&f.nameTemplate, "name-template", "", "with -w DIR/: file names, default "+storage.DefaultTemplate+".pcapng")
	fs.StringVar(&f.compress, "compress", "none", "compress files: zstd, gzip or none")
	fs.IntVar(&f.compressLevel, "compress-level", 0, "zstd 1-22 (default 3) or gzip 1-9 (default 6)")
	fs.StringVar(&f.frameSize, "zstd-frame-size", "1MiB", "compressed files are independent frames (gzip members) of this much capture data")
	fs.StringVar(&f.maxBytes, "max-bytes", "", "retention: keep at most this many bytes of finished files (e.g. 50GB)")
	fs.StringVar(&f.maxAge, "max-age", "", "retention: delete files older than this (e.g. 72h, 30d)")
	fs.StringVar(&f.minFree, "min-free", "", "retention: keep this much disk space free, as a percentage or a size (e.g. 10%, 5GB)")
	f.export.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ringtap capture -i IFACE [-i IFACE ...] [-w FILE|DIR/|s3://BUCKET/PREFIX/|-] [-C SIZE] [-G SECONDS] [-W COUNT] [-z CMD] [--compress zstd|gzip] [--max-bytes SIZE] [--max-age AGE] [--min-free SPACE] [-s SNAPLEN] [-c COUNT] [--duration D] [-F pcapng|pcap] [--hook auto|xdp|tc] [--direction in|out|inout] [--monitor-port] [--ring-size BYTES] [--xdp-mode auto|native|generic] [--bpf-file FILE] [EXPRESSION]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	f.expr = strings.Join(fs.Args(), " ")
	if f.expr != "" && f.bpfFile != "" {
		return nil, fmt.Errorf("%w: give either an EXPRESSION or --bpf-file, not both", errUsage)
	}
	if f.snaplen == 0 {
		f.snaplen = capture.MaxSnapLen // tcpdump's -s 0
	}
	if f.snaplen > capture.MaxSnapLen {
		return nil, fmt.Errorf("%w: snaplen %d out of range: use 1 to %d (0 for %d)", errUsage, f.snaplen, capture.MaxSnapLen, capture.MaxSnapLen)
	}
	return f, nil
}

// outputFlags are the flags that need a file or directory output.
var outputFlags = []string{"C", "G", "W", "z", "postrotate-timeout", "name-template", "compress", "compress-level", "zstd-frame-size", "max-bytes", "max-age", "min-free"}

// flagName writes a flag as the help does: -C, --compress.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// storageOptions turns the output flags into storage options and checks
// them, creating nothing. It is called before anything is attached.
func storageOptions(f *captureFlags, format pcapio.Format) (storage.Options, error) {
	o := storage.Options{Format: format, Application: "ringtap " + version, FileCount: f.fileCount,
		Postrotate: f.postrotate, PostrotateTimeout: f.postrotateTimeout, Template: f.nameTemplate}
	out := f.out
	if isS3(out) {
		// Files are written into the spool and uploaded from there.
		out = f.export.spool + "/"
	} else if scheme, _, ok := strings.Cut(out, "://"); ok && !strings.Contains(scheme, "/") {
		// Not a local path: without this, x://b/p/ would make a
		// directory named "x:".
		return o, fmt.Errorf("%w: -w %s: ringtap capture writes local files, or uploads to s3://", errUsage, out)
	}
	if !isS3(f.out) {
		for _, name := range exportOnlyFlags {
			if f.set[name] {
				return o, fmt.Errorf("%w: %s is for -w s3://BUCKET/PREFIX/", errUsage, flagName(name))
			}
		}
	}
	if fi, err := os.Stat(out); strings.HasSuffix(out, "/") || err == nil && fi.IsDir() {
		o.Dir = out
	} else {
		o.File = out
		if f.nameTemplate != "" {
			return o, fmt.Errorf("%w: --name-template names the files of a directory: use -w DIR/", errUsage)
		}
	}
	usage := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	if f.fileSize != "" {
		// tcpdump's -C counts millions of bytes: a bare number (0.5 too)
		// is in MB.
		size := f.fileSize
		if strings.Trim(size, "0123456789.") == "" {
			size += "MB"
		}
		var err error
		if o.FileSize, err = storage.ParseSize(size); err != nil {
			return o, usage("-C: %v", err)
		}
		if o.FileSize == 0 {
			return o, usage("-C must be above 0")
		}
	}
	if f.fileAge != "" {
		d, err := storage.ParseDuration(f.fileAge)
		if err != nil {
			return o, usage("-G: %v", err)
		}
		if d <= 0 {
			return o, usage("-G must be above 0")
		}
		o.FileAge = d
	}
	if f.fileCount < 0 {
		return o, usage("-W %d: want a positive count", f.fileCount)
	}
	if f.fileCount > 0 && o.FileSize == 0 && o.FileAge == 0 {
		return o, usage("-W needs -C or -G: it keeps a ring of rotated files")
	}
	var err error
	if o.Compression, err = storage.ParseCompression(f.compress); err != nil {
		return o, usage("--compress %q: use zstd, gzip or none", f.compress)
	}
	o.CompressionLevel = f.compressLevel
	if n, err := storage.ParseSize(f.frameSize); err != nil {
		return o, usage("--zstd-frame-size: %v", err)
	} else if n > storage.MaxFrameSize || n < storage.MinFrameSize {
		return o, usage("--zstd-frame-size %s out of range: use 64KiB to 64MiB", f.frameSize)
	} else {
		o.FrameSize = int(n)
	}
	if f.maxBytes != "" {
		if o.MaxBytes, err = storage.ParseSize(f.maxBytes); err != nil {
			return o, usage("--max-bytes: %v", err)
		}
	}
	if f.maxAge != "" {
		if o.MaxAge, err = storage.ParseDuration(f.maxAge); err != nil {
			return o, usage("--max-age: %v", err)
		}
	}
	if f.minFree != "" {
		if o.MinFree, err = storage.ParseSpace(f.minFree); err != nil {
			return o, usage("--min-free: %v", err)
		}
	}
	if err := o.Validate(); err != nil {
		if errors.Is(err, storage.ErrUnwritable) {
			return o, fmt.Errorf("cannot write the output file: %w", err)
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	return o, nil
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
	out     string
	stats   capture.Stats
	storage *storage.Stats // nil for stdout
}

func (r *captureResult) print(w io.Writer) {
	for _, is := range r.stats.Interfaces {
		t := is.Total()
		fmt.Fprintf(w, "%s: %d packets captured, %d packets dropped by ring overflow, %d packets seen by hook (%d matched the filter)\n",
			is.Name, t.Captured, t.Dropped, t.Seen, t.Matched)
	}
	if r.storage == nil {
		fmt.Fprintf(w, "%d packets written to %s\n", r.stats.Written, r.out)
		return
	}
	s := r.storage
	fmt.Fprintf(w, "%d packets written to %s in %d files, %d packets dropped by the writer (write errors, or disk or compressor too slow), %d files deleted by retention\n",
		s.PacketsWritten, r.out, s.FilesWritten, s.WriteDrops, s.RetentionDeletedFiles)
	if s.RetentionLosses > 0 {
		fmt.Fprintf(w, "%d files deleted by retention before they were exported\n", s.RetentionLosses)
	}
	if s.PostrotateFailures > 0 {
		fmt.Fprintf(w, "%d postrotate commands failed\n", s.PostrotateFailures)
	}
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
	// Check the output before attaching, so that a mistake costs
	// nothing; the files are created only once the capture is open, and
	// an existing file is replaced only when its successor is complete.
	var sopts storage.Options
	if f.out == "-" {
		for _, name := range append(outputFlags, exportOnlyFlags...) {
			if f.set[name] {
				return nil, fmt.Errorf("%w: %s needs a file or a directory: -w - streams one pcap to stdout (compress with a pipe, e.g. | zstd)", errUsage, flagName(name))
			}
		}
	} else if sopts, err = storageOptions(f, format); err != nil {
		return nil, err
	}
	var up *uploader
	if isS3(f.out) {
		cfg, err := exportConfig(f)
		if err != nil {
			return nil, err
		}
		if up, err = startUpload(cfg, f); err != nil {
			return nil, err
		}
		up.hook(&sopts)
		defer func() {
			if up != nil { // not finished: the capture never ran
				up.cancel()
				<-up.done
				up.x.Close()
			}
		}()
	}
	c, err := capture.Open(capture.Config{
		Interfaces: f.ifaces, Hook: hook, Direction: dir, SnapLen: uint32(f.snaplen),
		RingSize: f.ringSize, MonitorPort: f.monitor, Filter: filt, NetNS: f.netns, Count: f.count,
		XDPMode: xdpMode, WakeupBytes: f.wakeupBytes, SharedRing: f.sharedRing, PinReaders: f.pinReaders,
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var (
		w   capture.PacketWriter
		pw  *pcapio.Writer
		rec *storage.Recorder
	)
	if f.out == "-" {
		pw, err = pcapio.NewWriter(stdout, pcapio.WriterOptions{
			Format: format, Application: "ringtap " + version, Interfaces: c.Interfaces(),
		})
		if err != nil {
			return nil, fmt.Errorf("start output: %w", err)
		}
		w = pw
	} else {
		sopts.Interfaces = c.Interfaces()
		sopts.Stats = func() []pcapio.InterfaceStats { return cumulativeStats(c) }
		if rec, err = storage.NewRecorder(sopts); err != nil {
			if errors.Is(err, storage.ErrUnwritable) {
				return nil, fmt.Errorf("cannot write the output file: %w", err)
			}
			return nil, fmt.Errorf("start output: %w", err)
		}
		w = rec
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
	res := &captureResult{out: f.out}
	if pw != nil {
		if err := pw.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("finish output: %w", err)
		}
		res.out = "stdout"
	} else {
		if err := rec.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("finish output: %w", err)
		}
		s := rec.Stats()
		res.storage = &s
	}
	if up != nil {
		if err := up.finish(stderr); err != nil && runErr == nil {
			runErr = err
		}
		up = nil
	}
	st, serr := c.Stats()
	if serr != nil {
		slog.Warn("read counters", "error", serr)
	}
	res.stats = st
	return res, runErr
}

// cumulativeStats are the capture's counters per interface, as the
// statistics blocks count them.
func cumulativeStats(c *capture.Capture) []pcapio.InterfaceStats {
	st, err := c.Stats()
	if err != nil {
		return nil
	}
	now := time.Now().UnixNano()
	out := make([]pcapio.InterfaceStats, len(st.Interfaces))
	for i, is := range st.Interfaces {
		t := is.Total()
		out[i] = pcapio.InterfaceStats{Timestamp: now, Received: t.Seen, Dropped: t.Lost(), Accepted: t.Matched}
	}
	return out
}
