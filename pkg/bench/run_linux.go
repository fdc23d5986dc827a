package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// Config describes a benchmark invocation.
type Config struct {
	Ringtap   string // path to the ringtap binary
	Tcpdump   string // path to tcpdump
	Scenarios []Scenario
	Tools     []string // "ringtap", "tcpdump" or the label of a Variant
	// Variants are other ringtap builds or settings, run as tools of their
	// own, so that a lever is measured side by side with what ships.
	Variants  map[string]Variant
	Rounds    int
	Packets   uint64 // frames offered per run
	Rate      uint64 // frames per second, 0 = the kernel's top rate
	FrameSize int
	SnapLen   int
	RingSize  int // ringtap --ring-size
	BufferKiB int // tcpdump -B
	// GenCPU pins the generator to this CPU (-1: let it float). Live
	// frames are received on the sender's CPU, so the capture's kernel
	// side runs there too and the capturer's user space gets the rest.
	GenCPU int
	// ToolCPUs is the taskset CPU list the capturing process runs on: ""
	// means every CPU but GenCPU (so that it never takes the generator's
	// CPU and every run places it alike), "all" no pinning.
	ToolCPUs string
	// Flows > 1 varies the UDP source port over that many flows (40000,
	// 40001, ...), round robin.
	Flows int
	// RingtapArgs are extra flags for ringtap capture (e.g. --cpuprofile).
	RingtapArgs []string
	Dir         string
	Log         *slog.Logger
}

// Result is one capture run.
type Result struct {
	Scenario string  `json:"scenario"`
	Tool     string  `json:"tool"`
	Round    int     `json:"round"`
	Rate     uint64  `json:"rate_pps_requested"`
	Offered  uint64  `json:"offered"`
	Captured uint64  `json:"captured"`
	LossPct  float64 `json:"loss_pct"`
	GenPPS   float64 `json:"generator_pps"`
	// BasePPS is the mean of the baseline runs before and after the
	// capture, which cancels a drift or an order effect between runs.
	BasePPS     float64 `json:"baseline_generator_pps"`
	BaseBefore  float64 `json:"baseline_before_pps"`
	BaseAfter   float64 `json:"baseline_after_pps"`
	GenRatio    float64 `json:"generator_ratio"`
	CapturedPPS float64 `json:"captured_pps"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUPerMpkt  float64 `json:"cpu_seconds_per_million_packets"`
	CPUNsPerPkt float64 `json:"cpu_ns_per_packet"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	OutputBytes int64   `json:"output_bytes"`
	// RSSMiB samples the capturer's RSS during the run (soak only).
	RSSMiB []float64 `json:"rss_mib_samples,omitempty"`
}

// Runner runs benchmark rounds.
type Runner struct{ cfg Config }

// NewRunner checks the configuration.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Packets == 0 {
		cfg.Packets = 2_000_000
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = 64
	}
	if cfg.SnapLen == 0 {
		cfg.SnapLen = 128
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = 8 << 20
	}
	if cfg.BufferKiB == 0 {
		cfg.BufferKiB = 256 << 10 // 256 MiB, "large -B"
	}
	if len(cfg.Tools) == 0 {
		cfg.Tools = []string{"ringtap", "tcpdump"}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for _, tool := range cfg.Tools {
		path := cfg.Ringtap
		switch v, ok := cfg.Variants[tool]; {
		case tool == "tcpdump":
			path = cfg.Tcpdump
		case ok && v.Binary != "":
			path = v.Binary
		case !ok && tool != "ringtap":
			return nil, fmt.Errorf("unknown tool %q: want ringtap, tcpdump or a variant's label", tool)
		}
		if _, err := exec.LookPath(path); err != nil {
			return nil, fmt.Errorf("%s not found at %q: %w", tool, path, err)
		}
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "ringtap-bench")
		if err != nil {
			return nil, fmt.Errorf("temporary directory: %w", err)
		}
		cfg.Dir = d
	}
	return &Runner{cfg: cfg}, nil
}

// Config is the effective configuration.
func (r *Runner) Config() Config { return r.cfg }

// Rounds runs every scenario for every round, tools alternating (their
// order flips each round), at rate (0: top rate).
func (r *Runner) Rounds(ctx context.Context, rate uint64) ([]Result, error) {
	var out []Result
	for _, sc := range r.cfg.Scenarios {
		for round := range r.cfg.Rounds {
			tools := append([]string{}, r.cfg.Tools...)
			if round%2 == 1 {
				for i, j := 0, len(tools)-1; i < j; i, j = i+1, j-1 {
					tools[i], tools[j] = tools[j], tools[i]
				}
			}
			for _, tool := range tools {
				res, err := r.Once(ctx, sc, tool, round, rate, r.cfg.Packets)
				if err != nil {
					return out, fmt.Errorf("%s/%s round %d: %w", sc.Name, tool, round, err)
				}
				r.cfg.Log.Info("run", "scenario", sc.Name, "tool", tool, "round", round,
					"offered", res.Offered, "captured", res.Captured, "loss_pct", res.LossPct,
					"gen_mpps", res.GenPPS/1e6, "gen_ratio", res.GenRatio, "cpu_ns_pkt", res.CPUNsPerPkt)
				out = append(out, res)
			}
		}
	}
	return out, nil
}

func (r *Runner) frame(sc Scenario, p *testbed.Pair) []byte {
	o := trafficgen.FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4, SrcPort: 40000, DstPort: 9, Size: r.cfg.FrameSize}
	if sc.Monitor {
		o.DstMAC = []byte{0x02, 0xee, 0, 0, 0, 1} // someone else's: mirrored traffic
	}
	return trafficgen.Must(trafficgen.BuildUDP4(o))
}

// generate sends n frames at rate from A.
func (r *Runner) generate(ctx context.Context, p *testbed.Pair, frame []byte, n, rate uint64) (trafficgen.Result, error) {
	ls, err := trafficgen.NewLiveSender(p.A, frame)
	if err != nil {
		return trafficgen.Result{}, err
	}
	ls.CPU = r.cfg.GenCPU
	defer ls.Close()
	if r.cfg.Flows > 1 {
		if err := ls.SetFlows(r.cfg.Flows); err != nil {
			return trafficgen.Result{}, err
		}
	}
	return ls.Run(ctx, n, rate)
}

// baseline is the generator's rate with a bare XDP program on B: drop for
// mirrored traffic, pass for host traffic.
func (r *Runner) baseline(ctx context.Context, sc Scenario, p *testbed.Pair, frame []byte, rate uint64) (float64, error) {
	attach := trafficgen.AttachPass
	if sc.Monitor {
		attach = trafficgen.AttachDrop
	}
	l, err := attach(p.B)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	res, err := r.generate(ctx, p, frame, r.cfg.Packets, rate)
	if err != nil {
		return 0, err
	}
	return float64(res.Sent) / res.Duration.Seconds(), nil
}

// Once runs one capture: fresh hosts, baseline, capturer, generator.
func (r *Runner) Once(ctx context.Context, sc Scenario, tool string, round int, rate, packets uint64) (Result, error) {
	return r.once(ctx, sc, tool, round, rate, packets, 0)
}

func (r *Runner) once(ctx context.Context, sc Scenario, tool string, round int, rate, packets uint64, rssEvery time.Duration) (Result, error) {
	res := Result{Scenario: sc.Name, Tool: tool, Round: round, Rate: rate}
	p, err := testbed.NewPair(testbed.PairConfig{Name: "rtb"})
	if err != nil {
		return res, err
	}
	defer p.Close()
	frame := r.frame(sc, p)
	if res.BaseBefore, err = r.baseline(ctx, sc, p, frame, rate); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	// Pass programs the capture needs; detached before the second baseline.
	var links []io.Closer
	closeLinks := func() {
		for _, l := range links {
			l.Close()
		}
		links = nil
	}
	defer closeLinks()
	out := filepath.Join(r.cfg.Dir, fmt.Sprintf("%s-%s-%d.pcap", sc.Name, tool, round))
	defer os.Remove(out)
	// A soak would write more than a disk holds: it writes to /dev/null
	// and counts what ringtap reports as written.
	soak := rssEvery > 0
	if soak {
		out = os.DevNull
	}

	var cmd *exec.Cmd
	variant, isVariant := r.cfg.Variants[tool]
	switch {
	case tool == "ringtap" || isVariant:
		args := []string{"capture", "-i", p.B.Link, "--netns", p.B.NSPath, "-w", out, "-s", strconv.Itoa(r.cfg.SnapLen),
			"--ring-size", strconv.Itoa(r.cfg.RingSize), "--hook", sc.Hook}
		if sc.Monitor {
			args = append(args, "--monitor-port")
		}
		if sc.Hook == "tc" {
			// Live frames reach a veth only if it runs an XDP program.
			l, err := trafficgen.AttachPass(p.B)
			if err != nil {
				return res, err
			}
			links = append(links, l)
		}
		args = append(args, r.cfg.RingtapArgs...)
		args = append(args, variant.Args...)
		if genericXDP(args) {
			// Live frames reach a veth without a native XDP program
			// only through its NAPI, which GRO turns on.
			if out, err := exec.Command("ip", "netns", "exec", p.B.NSName, "ethtool", "-K", p.B.Link, "gro", "on").CombinedOutput(); err != nil {
				return res, fmt.Errorf("enable gro on %s for generic xdp: %w: %s", p.B.Link, err, out)
			}
		}
		bin := r.cfg.Ringtap
		if variant.Binary != "" {
			bin = variant.Binary
		}
		cmd = exec.Command(bin, append(args, sc.Filter)...)
		if len(variant.Env) > 0 {
			cmd.Env = append(os.Environ(), variant.Env...)
		}
	case tool == "tcpdump":
		// tcpdump needs frames to reach the stack: a pass program lets
		// live frames arrive at the veth.
		l, err := trafficgen.AttachPass(p.B)
		if err != nil {
			return res, err
		}
		links = append(links, l)
		cmd = exec.Command("ip", "netns", "exec", p.B.NSName, r.cfg.Tcpdump, "-i", p.B.Link, "-w", out, "-n",
			"-s", strconv.Itoa(r.cfg.SnapLen), "-B", strconv.Itoa(r.cfg.BufferKiB), sc.Filter)
	default:
		return res, fmt.Errorf("unknown tool %q", tool)
	}
	if cpus := r.toolCPUs(); cpus != "" {
		pinned := exec.Command("taskset", append([]string{"-c", cpus}, cmd.Args...)...)
		pinned.Env = cmd.Env
		cmd = pinned
	}
	stderr, err := startAndWaitListening(cmd)
	if err != nil {
		return res, fmt.Errorf("start %s: %w", tool, err)
	}
	var samples <-chan []float64
	stopSampling := make(chan struct{})
	if rssEvery > 0 {
		samples = sampleRSS(cmd.Process.Pid, rssEvery, stopSampling)
	}
	gen, gerr := r.generate(ctx, p, frame, packets, rate)
	close(stopSampling)
	if samples != nil {
		res.RSSMiB = <-samples
	}
	// Stop the generator before the capturer: the capturer detaches its
	// XDP program on exit, and detaching during a live-frames run has
	// crashed kernels.
	waitStable(out, 300*time.Millisecond, 10*time.Second)
	_ = cmd.Process.Signal(syscall.SIGINT)
	werr := waitExit(cmd, 30*time.Second)
	if gerr != nil {
		return res, fmt.Errorf("generator: %w", gerr)
	}
	if werr != nil {
		return res, fmt.Errorf("%s: %w\n%s", tool, werr, stderr.String())
	}
	res.Offered = gen.Sent
	res.GenPPS = float64(gen.Sent) / gen.Duration.Seconds()
	closeLinks()
	if res.BaseAfter, err = r.baseline(ctx, sc, p, frame, rate); err != nil {
		return res, fmt.Errorf("baseline after the capture: %w", err)
	}
	res.BasePPS = (res.BaseBefore + res.BaseAfter) / 2
	if res.BasePPS > 0 {
		res.GenRatio = res.GenPPS / res.BasePPS
	}
	if soak {
		res.Captured, err = writtenFromSummary(stderr.String())
	} else {
		res.Captured, res.OutputBytes, err = countFile(out)
	}
	if err != nil {
		return res, fmt.Errorf("read %s output: %w\n%s", tool, err, stderr.String())
	}
	want := res.Offered
	if sc.Reject {
		want = 0
	}
	if want > 0 {
		res.LossPct = 100 * float64(int64(want)-int64(res.Captured)) / float64(want)
	}
	res.CapturedPPS = float64(res.Captured) / gen.Duration.Seconds()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
	per := max(res.Captured, 1)
	if sc.Reject {
		per = res.Offered
	}
	res.CPUPerMpkt = res.CPUSeconds / float64(per) * 1e6
	res.CPUNsPerPkt = res.CPUSeconds / float64(per) * 1e9
	res.PeakRSSMiB = float64(ru.Maxrss) / 1024
	return res, nil
}

// toolCPUs is the taskset list for the capturing process ("" for none).
func (r *Runner) toolCPUs() string {
	switch r.cfg.ToolCPUs {
	case "all":
		return ""
	case "":
		n := runtime.NumCPU()
		if r.cfg.GenCPU < 0 || r.cfg.GenCPU >= n || n < 2 {
			return ""
		}
		var cpus []string
		for c := range n {
			if c != r.cfg.GenCPU {
				cpus = append(cpus, strconv.Itoa(c))
			}
		}
		return strings.Join(cpus, ",")
	}
	return r.cfg.ToolCPUs
}

// genericXDP says whether ringtap args ask for generic XDP.
func genericXDP(args []string) bool {
	for i, a := range args {
		if a == "--xdp-mode=generic" || a == "-xdp-mode=generic" ||
			((a == "--xdp-mode" || a == "-xdp-mode") && i+1 < len(args) && args[i+1] == "generic") {
			return true
		}
	}
	return false
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// startAndWaitListening starts cmd and waits for its "listening on" line.
// output is a process's stderr; String waits until the process closed it.
type output struct {
	buf    strings.Builder
	copied chan struct{}
}

func (o *output) String() string {
	select {
	case <-o.copied:
	case <-time.After(5 * time.Second):
		return "(stderr still open)"
	}
	return o.buf.String()
}

func startAndWaitListening(cmd *exec.Cmd) (*output, error) {
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &output{copied: make(chan struct{})}
	buf, copied := &o.buf, o.copied
	listening := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), "listening on") {
				seen = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-listening:
		// tcpdump prints its line just before its first read; give its
		// socket a moment so the first frames are not missed.
		time.Sleep(200 * time.Millisecond)
		return o, nil
	case <-copied:
		_ = cmd.Wait()
		return nil, fmt.Errorf("exited before listening: %s", buf.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, errors.New("no listening line within 30s")
	}
}

func waitExit(cmd *exec.Cmd, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %v of SIGINT", limit)
	}
}

// waitStable waits until path stops growing for quiet, at most limit.
func waitStable(path string, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		var size int64
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		if size != last {
			last, lastChange = size, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writtenFromSummary reads "N packets written to" from ringtap's summary.
func writtenFromSummary(stderr string) (uint64, error) {
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "packets" && f[2] == "written" {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no summary in ringtap's output")
}

// countFile counts the packets in a capture file and in the files that
// rotation (-C, -G) numbered after it as tcpdump does (path1, path2 ...),
// zstd- or gzip-compressed or not; the size is that of all of them.
func countFile(path string) (uint64, int64, error) {
	var n uint64
	var size int64
	for i := 0; ; i++ {
		p := path
		if i > 0 {
			p = path + strconv.Itoa(i)
		}
		c, sz, err := countOne(p)
		if i > 0 && errors.Is(err, os.ErrNotExist) {
			return n, size, nil
		}
		n, size = n+c, size+sz
		if err != nil {
			return n, size, err
		}
	}
}

func countOne(path string) (uint64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	var in io.Reader = bufio.NewReader(f)
	magic, _ := in.(*bufio.Reader).Peek(4)
	switch {
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(in)
		if err != nil {
			return 0, fi.Size(), err
		}
		defer d.Close()
		in = d
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		if in, err = gzip.NewReader(in); err != nil {
			return 0, fi.Size(), err
		}
	}
	rd, err := pcapio.NewReader(in)
	if err != nil {
		return 0, fi.Size(), err
	}
	var n uint64
	var p pcapio.Packet
	for {
		err := rd.Next(&p)
		if errors.Is(err, io.EOF) {
			return n, fi.Size(), nil
		}
		if err != nil {
			return n, fi.Size(), err
		}
		n++
	}
}
