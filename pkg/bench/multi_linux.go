package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ringtap/ringtap/pkg/testbed"
	"github.com/ringtap/ringtap/pkg/trafficgen"
)

// MultiConfig describes a multi-capture benchmark: N captures on one
// interface, each with a different filter, by ringtap (N captures of one
// Engine in one worker process) and by tcpdump (N processes).
type MultiConfig struct {
	Counts    []int      // captures per run, e.g. 1, 4, 16
	Modes     []string   // ModeDisjoint, ModeOverlap
	Scenarios []Scenario // from MultiScenarios
	Tools     []string   // "ringtap", "tcpdump"
	// Layouts of ringtap's captures, each run as a tool of its own:
	// LayoutShared (default), LayoutSeparate (TC scenarios only).
	Layouts []string
	Rounds  int
	// Rate is the paced generator rate (frames/s), the same for every
	// run: one both tools sustain with 16 captures, so that CPU is
	// compared on equal work. Default 50,000.
	Rate uint64
	// Packets per run; default 1.5 s worth at Rate.
	Packets   uint64
	FrameSize int
	SnapLen   int
	RingSize  int // ringtap per-CPU ring
	BufferKiB int // tcpdump -B of each process
	GenCPU    int // see Config.GenCPU
	ToolCPUs  string
	// Worker is the argv that runs the capture worker (RunWorker) before
	// its flags, e.g. [ringtap-bench capture-worker]; WorkerEnv is added
	// to its environment.
	Worker    []string
	WorkerEnv []string
	Tcpdump   string
	// Dir holds the capture files of a run (deleted after it): tmpfs, so
	// that the disk does not enter the figures. Default a directory in
	// /dev/shm.
	Dir string
	Log *slog.Logger
}

// MultiRunner runs the multi-capture benchmark.
type MultiRunner struct {
	cfg      MultiConfig
	softirqd []int // pids of the ksoftirqd threads
	// failed: settings a tool could not start, by "scenario/tool/n/mode"; later
	// rounds record them without trying again (a verifier rejection does
	// not change between rounds, and costs seconds).
	failed map[string]string
}

// NewMultiRunner checks cfg and fills in defaults.
func NewMultiRunner(cfg MultiConfig) (*MultiRunner, error) {
	if len(cfg.Counts) == 0 {
		cfg.Counts = []int{1, 4, 16}
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = []string{ModeDisjoint, ModeOverlap}
	}
	for _, m := range cfg.Modes {
		if _, err := MultiFilters(m, 1); err != nil || m == ModeSingle {
			return nil, fmt.Errorf("unknown filter set %q: use %s or %s", m, ModeDisjoint, ModeOverlap)
		}
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = DefaultMultiScenarios
	}
	if len(cfg.Layouts) == 0 {
		cfg.Layouts = []string{LayoutShared}
	}
	for _, l := range cfg.Layouts {
		if l != LayoutShared && l != LayoutSeparate {
			return nil, fmt.Errorf("unknown capture layout %q: use %s or %s", l, LayoutShared, LayoutSeparate)
		}
		for _, sc := range cfg.Scenarios {
			if l == LayoutSeparate && sc.Hook != "tc" {
				return nil, fmt.Errorf("the separate layout runs at TC only (an interface takes one XDP program): use the scenarios monitor-tc or host-tc, not %s", sc.Name)
			}
		}
	}
	if len(cfg.Tools) == 0 {
		cfg.Tools = []string{"ringtap", "tcpdump"}
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50_000
	}
	if cfg.Packets == 0 {
		cfg.Packets = cfg.Rate * 3 / 2
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
		cfg.BufferKiB = 32 << 10
	}
	if cfg.Tcpdump == "" {
		cfg.Tcpdump = "tcpdump"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	for _, tool := range cfg.Tools {
		switch tool {
		case "ringtap":
			if len(cfg.Worker) == 0 {
				return nil, errors.New("no capture worker command for ringtap")
			}
		case "tcpdump":
			if _, err := exec.LookPath(cfg.Tcpdump); err != nil {
				return nil, fmt.Errorf("tcpdump not found at %q: %w", cfg.Tcpdump, err)
			}
		default:
			return nil, fmt.Errorf("unknown tool %q for the multi-capture benchmark: use ringtap or tcpdump", tool)
		}
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("/dev/shm", "ringtap-bench-multi")
		if err != nil {
			return nil, fmt.Errorf("temporary directory on tmpfs: %w", err)
		}
		cfg.Dir = d
	}
	softirqd, err := softirqThreads()
	if err != nil {
		return nil, err
	}
	return &MultiRunner{cfg: cfg, softirqd: softirqd, failed: map[string]string{}}, nil
}

// Config is the effective configuration.
func (m *MultiRunner) Config() MultiConfig { return m.cfg }

// Run runs every scenario for every round. In a round, one pair of hosts
// serves every capture count; for each count the generator alone runs
// first and after every capture run (its mean before and after is the
// run's baseline), and the (filters, tool) runs alternate, in reverse
// order on odd rounds. One capture has one filter set, ModeSingle.
func (m *MultiRunner) Run(ctx context.Context) ([]MultiResult, error) {
	// Run-time statistics of every BPF program, for as long as the
	// benchmark runs (they cost every program the same few ns, the
	// baseline's included).
	var stats io.Closer
	if c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err != nil {
		m.cfg.Log.Warn("no BPF run-time statistics: kernel ns/pkt not measured", "error", err)
	} else {
		stats = c
		defer stats.Close()
	}
	var out []MultiResult
	for _, sc := range m.cfg.Scenarios {
		for round := range m.cfg.Rounds {
			res, err := m.round(ctx, sc, round)
			out = append(out, res...)
			if err != nil {
				return out, fmt.Errorf("%s round %d: %w", sc.Name, round, err)
			}
		}
	}
	return out, nil
}

type multiRun struct {
	mode, tool, layout string
}

func (m *MultiRunner) round(ctx context.Context, sc Scenario, round int) ([]MultiResult, error) {
	p, err := testbed.NewPair(testbed.PairConfig{Name: "rtm"})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var out []MultiResult
	for _, n := range m.cfg.Counts {
		var runs []multiRun
		modes := m.cfg.Modes
		if n == 1 {
			modes = []string{ModeSingle}
		}
		for _, mode := range modes {
			for _, tool := range m.cfg.Tools {
				if tool != "ringtap" {
					runs = append(runs, multiRun{mode, tool, ""})
					continue
				}
				for _, l := range m.cfg.Layouts {
					runs = append(runs, multiRun{mode, tool, l})
				}
			}
		}
		if round%2 == 1 {
			for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
				runs[i], runs[j] = runs[j], runs[i]
			}
		}
		frame := m.frame(sc, p)
		before, err := m.baseline(ctx, sc, p, frame, n)
		if err != nil {
			return out, fmt.Errorf("baseline: %w", err)
		}
		for _, run := range runs {
			key := fmt.Sprintf("%s/%s/%s/%d/%s", sc.Name, run.tool, run.layout, n, run.mode)
			if why, ok := m.failed[key]; ok {
				out = append(out, MultiResult{Scenario: sc.Name, Mode: run.mode, Captures: n, Tool: run.tool, Layout: run.layout, Round: round,
					Rate: m.cfg.Rate, Error: "not tried again: " + why})
				continue
			}
			res, err := m.once(ctx, sc, p, frame, n, run, round)
			var notStarted *startError
			switch {
			case errors.As(err, &notStarted):
				// A setting the tool cannot run is a result: record
				// it and go on with the others.
				res.Error = err.Error()
				m.failed[key] = res.Error
				m.cfg.Log.Warn("run failed", "scenario", sc.Name, "filters", run.mode, "captures", n, "tool", run.tool, "layout", run.layout, "error", err)
				out = append(out, res)
				continue
			case err != nil:
				return out, fmt.Errorf("%s %s %d × %s: %w", run.tool, run.layout, n, run.mode, err)
			}
			after, err := m.baseline(ctx, sc, p, frame, n)
			if err != nil {
				return out, fmt.Errorf("baseline: %w", err)
			}
			res.BaseCPUNsPerPkt = (before.attributed + after.attributed) / 2
			res.WholeBaseNsPerPkt = (before.whole + after.whole) / 2
			before = after
			if res.Offered > 0 {
				res.SystemNsPerPkt = res.SystemCPUNs/float64(res.Offered) - res.BaseCPUNsPerPkt
				res.WholeNsPerPkt = res.WholeCPUNs/float64(res.Offered) - res.WholeBaseNsPerPkt
			}
			m.cfg.Log.Info("run", "scenario", sc.Name, "filters", res.Mode, "captures", n, "tool", res.Tool, "layout", res.Layout, "round", round,
				"offered", res.Offered, "captured", res.Captured, "expected", res.Expected, "drops", res.Drops,
				"kernel_ns_pkt", int(res.KernelNsPerPkt), "process_ns_pkt", int(res.ProcessNsPerPkt), "system_ns_pkt", int(res.SystemNsPerPkt),
				"whole_ns_pkt", int(res.WholeNsPerPkt), "other_load_ms", int(res.OtherLoadNs/1e6))
			out = append(out, res)
		}
	}
	return out, nil
}

func (m *MultiRunner) frame(sc Scenario, p *testbed.Pair) []byte {
	o := trafficgen.FrameOpts{SrcMAC: p.A.MAC, DstMAC: p.B.MAC, Src: p.A.IPv4, Dst: p.B.IPv4,
		SrcPort: FlowBasePort, DstPort: 9, Size: m.cfg.FrameSize}
	if sc.Monitor {
		o.DstMAC = []byte{0x02, 0xee, 0, 0, 0, 1} // someone else's: mirrored traffic
	}
	return trafficgen.Must(trafficgen.BuildUDP4(o))
}

// generate sends the run's frames over flows flows at the paced rate.
func (m *MultiRunner) generate(ctx context.Context, p *testbed.Pair, frame []byte, flows int) (trafficgen.Result, error) {
	ls, err := trafficgen.NewLiveSender(p.A, frame)
	if err != nil {
		return trafficgen.Result{}, err
	}
	defer ls.Close()
	ls.CPU = m.cfg.GenCPU
	if err := ls.SetFlows(flows); err != nil {
		return trafficgen.Result{}, err
	}
	return ls.Run(ctx, m.cfg.Packets, m.cfg.Rate)
}

// quiet is how long ringtap's output must stop growing before a run is
// over (its writers flush every 50 ms). tcpdump's must stop for longer:
// libpcap's TPACKET_V3 ring hands over a block when it is full or after
// its 1 s timeout, so the last frames of a run come a second late.
// The figures count only the processes of the run, so an idle tail does
// not change them; a baseline waits as long as ringtap, for the
// whole-machine figure.
const (
	quiet        = 300 * time.Millisecond
	tcpdumpQuiet = 1500 * time.Millisecond
	// workerStart bounds how long the worker may take to attach its
	// captures: each start rebuilds and verifies the interface's
	// program with one filter more.
	workerStart = 3 * time.Minute
)

// perFrame is a baseline's CPU per frame: attributed (generator and
// ksoftirqd) and whole system.
type perFrame struct{ attributed, whole float64 }

// baseline is the CPU per frame of the generator alone, with a bare XDP
// program on B (drop for mirrored traffic, pass for host traffic; pass
// for both at TC, where the capture runs need it too: live frames reach a
// veth only through its XDP program, and frames to a foreign MAC then end
// in the stack).
func (m *MultiRunner) baseline(ctx context.Context, sc Scenario, p *testbed.Pair, frame []byte, flows int) (perFrame, error) {
	var none perFrame
	attach := trafficgen.AttachPass
	if sc.Monitor && sc.Hook != "tc" {
		attach = trafficgen.AttachDrop
	}
	l, err := attach(p.B)
	if err != nil {
		return none, err
	}
	defer l.Close()
	c0, err := sampleCPU(m.softirqd, nil)
	if err != nil {
		return none, err
	}
	res, err := m.generate(ctx, p, frame, flows)
	if err != nil {
		return none, err
	}
	time.Sleep(quiet)
	c1, err := sampleCPU(m.softirqd, nil)
	if err != nil {
		return none, err
	}
	n := float64(max(res.Sent, 1))
	return perFrame{attributed: attributed(c0, c1) / n, whole: busyNs(c0.whole, c1.whole) / n}, nil
}

// proc is one capturing process.
type proc struct {
	cmd    *exec.Cmd
	stderr *output
	stdout *strings.Builder
	file   string // tcpdump: its output
}

func (m *MultiRunner) pinned(args []string) []string {
	if cpus := (&Runner{cfg: Config{GenCPU: m.cfg.GenCPU, ToolCPUs: m.cfg.ToolCPUs}}).toolCPUs(); cpus != "" {
		return append([]string{"taskset", "-c", cpus}, args...)
	}
	return args
}

// once runs the n captures of run once.
func (m *MultiRunner) once(ctx context.Context, sc Scenario, p *testbed.Pair, frame []byte, n int, run multiRun, round int) (MultiResult, error) {
	res := MultiResult{Scenario: sc.Name, Mode: run.mode, Captures: n, Tool: run.tool, Layout: run.layout, Round: round, Rate: m.cfg.Rate}
	filters, err := MultiFilters(run.mode, n)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(m.cfg.Dir, "run")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	var procs []*proc
	defer func() { // on an error: nothing may outlive the run
		for _, pr := range procs {
			if pr.cmd.Process != nil && pr.cmd.ProcessState == nil {
				_ = pr.cmd.Process.Kill()
				_ = pr.cmd.Wait()
			}
		}
	}()
	var passLink io.Closer
	defer func() {
		if passLink != nil {
			passLink.Close()
		}
	}()
	switch run.tool {
	case "ringtap":
		args := append(append([]string{}, m.cfg.Worker...), "-netns", p.B.NSPath, "-i", p.B.Link, "-s", strconv.Itoa(m.cfg.SnapLen),
			"-ring-size", strconv.Itoa(m.cfg.RingSize), "-dir", dir)
		if sc.Monitor {
			args = append(args, "-monitor-port")
		}
		if sc.Hook == "tc" {
			args = append(args, "-hook", "tc")
			// Live frames reach a veth only if it runs an XDP program.
			if passLink, err = trafficgen.AttachPass(p.B); err != nil {
				return res, err
			}
		}
		if run.layout == LayoutSeparate {
			args = append(args, "-separate")
		}
		for _, f := range filters {
			args = append(args, "-filter", f)
		}
		args = m.pinned(args)
		cmd := exec.Command(args[0], args[1:]...)
		if len(m.cfg.WorkerEnv) > 0 {
			cmd.Env = append(os.Environ(), m.cfg.WorkerEnv...)
		}
		pr := &proc{cmd: cmd, stdout: &strings.Builder{}}
		cmd.Stdout = pr.stdout
		started := time.Now()
		if pr.stderr, err = startWorker(cmd, workerStart); err != nil {
			return res, &startError{fmt.Errorf("start capture worker: %w", err)}
		}
		res.StartSeconds = time.Since(started).Seconds()
		procs = append(procs, pr)
	case "tcpdump":
		// Live frames reach a veth only if it runs an XDP program.
		if passLink, err = trafficgen.AttachPass(p.B); err != nil {
			return res, err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for i, f := range filters {
			file := filepath.Join(dir, fmt.Sprintf("t%02d.pcap", i))
			args := m.pinned([]string{"ip", "netns", "exec", p.B.NSName, m.cfg.Tcpdump, "-i", p.B.Link, "-w", file, "-n",
				"-s", strconv.Itoa(m.cfg.SnapLen), "-B", strconv.Itoa(m.cfg.BufferKiB), f})
			pr := &proc{cmd: exec.Command(args[0], args[1:]...), file: file}
			procs = append(procs, pr)
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := startAndWaitListening(pr.cmd)
				mu.Lock()
				defer mu.Unlock()
				pr.stderr = o
				if err != nil {
					errs = append(errs, fmt.Errorf("start tcpdump %q: %w", f, err))
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
	}

	progs, err := hookPrograms(p.B, sc.Hook)
	if err != nil {
		return res, err
	}
	defer progs.Close()
	if run.tool == "ringtap" && len(progs) == 0 {
		return res, fmt.Errorf("no program on %s's %s hook while ringtap captures", p.B.Link, sc.Hook)
	}
	var pids []int
	for _, pr := range procs {
		pids = append(pids, pr.cmd.Process.Pid)
	}
	c0, err := sampleCPU(m.softirqd, pids)
	if err != nil {
		return res, err
	}
	s0, ok0 := progs.stats()
	gen, gerr := m.generate(ctx, p, frame, n)
	// Stop the generator before the capturer: detaching XDP during a
	// live-frames run has crashed kernels.
	if run.tool == "tcpdump" {
		waitStableDir(dir, tcpdumpQuiet, 15*time.Second)
	} else {
		waitStableDir(dir, quiet, 15*time.Second)
	}
	c1, err := sampleCPU(m.softirqd, pids)
	if err != nil {
		return res, err
	}
	s1, ok1 := progs.stats()
	for _, pr := range procs {
		_ = pr.cmd.Process.Signal(syscall.SIGINT)
	}
	var werrs []error
	for _, pr := range procs {
		if err := waitExit(pr.cmd, 30*time.Second); err != nil {
			werrs = append(werrs, fmt.Errorf("%s: %w\n%s", run.tool, err, pr.stderr.String()))
		}
	}
	if gerr != nil {
		return res, fmt.Errorf("generator: %w", gerr)
	}
	if err := errors.Join(werrs...); err != nil {
		return res, err
	}
	res.Offered = gen.Sent
	res.GenPPS = float64(gen.Sent) / gen.Duration.Seconds()
	res.SystemCPUNs = attributed(c0, c1)
	res.WholeCPUNs = busyNs(c0.whole, c1.whole)
	res.OtherLoadNs = res.WholeCPUNs - res.SystemCPUNs
	res.ProcessCPUNs = float64(c1.procs - c0.procs)
	if ok0 && ok1 {
		res.KernelProgNs = float64(s1.Runtime - s0.Runtime)
		res.KernelProgRuns = s1.RunCount - s0.RunCount
		res.KernelProgs = len(progs)
	}

	expected := MultiExpected(run.mode, n, gen.Sent)
	var files []string
	switch run.tool {
	case "ringtap":
		var rep WorkerReport
		if err := json.Unmarshal([]byte(procs[0].stdout.String()), &rep); err != nil {
			return res, fmt.Errorf("read the capture worker's report: %w\n%s", err, procs[0].stderr.String())
		}
		if len(rep.Captures) != n {
			return res, fmt.Errorf("capture worker reported %d captures, want %d", len(rep.Captures), n)
		}
		res.Records = rep.Records
		for _, c := range rep.Captures {
			res.Drops += c.RingDrops + c.WriteDrops
			files = append(files, c.File)
		}
	case "tcpdump":
		for _, pr := range procs {
			d, err := droppedByKernel(pr.stderr.String())
			if err != nil {
				return res, fmt.Errorf("tcpdump: %w\n%s", err, pr.stderr.String())
			}
			res.Drops += d
			files = append(files, pr.file)
		}
	}
	// Per-flow counts are exact only when the generator stayed on one
	// CPU (its flow counter is per CPU) and no call was restarted.
	exact := m.cfg.GenCPU >= 0 && gen.Retries == 0
	res.Complete = true
	for i, f := range files {
		got, _, err := countFile(f)
		if err != nil {
			return res, fmt.Errorf("count %s: %w", f, err)
		}
		res.PerCapture = append(res.PerCapture, got)
		res.Captured += got
		res.Expected += expected[i]
		if exact && got != expected[i] {
			res.Complete = false
		}
	}
	if !exact && res.Captured != res.Expected {
		res.Complete = false
	}
	if res.Expected > 0 {
		res.LossPct = 100 * (float64(res.Expected) - float64(res.Captured)) / float64(res.Expected)
	}
	per := float64(max(res.Offered, 1))
	res.ProcessNsPerPkt = res.ProcessCPUNs / per
	if res.KernelProgRuns > 0 && run.tool == "ringtap" {
		res.KernelNsPerPkt = res.KernelProgNs / per
	}
	return res, nil
}

// programs are the BPF programs of one hook of an interface.
type programs []*ebpf.Program

// hookPrograms opens the programs on h's link at hook: its XDP program
// (there must be one), or every program on its TCX ingress, in chain
// order (there may be none).
func hookPrograms(h testbed.Host, hook string) (programs, error) {
	var ids []ebpf.ProgramID
	err := h.Do(func() error {
		if hook == "tc" {
			q, err := link.QueryPrograms(link.QueryOptions{Target: h.Index, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("list tcx ingress programs of %s: %w", h.Link, err)
			}
			for _, p := range q.Programs {
				ids = append(ids, p.ID)
			}
			return nil
		}
		l, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Link, err)
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			ids = append(ids, ebpf.ProgramID(x.ProgId))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if hook != "tc" && len(ids) == 0 {
		return nil, fmt.Errorf("no XDP program on %s", h.Link)
	}
	var out programs
	for _, id := range ids {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("open %s program %d: %w", hook, id, err)
		}
		out = append(out, prog)
	}
	return out, nil
}

// stats sums the programs' run-time statistics; false when there are no
// programs or a program's cannot be read.
func (ps programs) stats() (ebpf.ProgramStats, bool) {
	var sum ebpf.ProgramStats
	for _, p := range ps {
		s, err := p.Stats()
		if err != nil {
			return sum, false
		}
		sum.Runtime += s.Runtime
		sum.RunCount += s.RunCount
	}
	return sum, len(ps) > 0
}

// Close closes every program.
func (ps programs) Close() {
	for _, p := range ps {
		_ = p.Close()
	}
}

// startError: the tool could not start the run's captures.
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// startWorker starts the capture worker and waits, at most limit, for its
// "listening on" line: every capture is attached.
func startWorker(cmd *exec.Cmd, limit time.Duration) (*output, error) {
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &output{copied: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		defer close(o.copied)
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			o.buf.WriteString(sc.Text() + "\n")
			if !seen && strings.HasPrefix(sc.Text(), "listening on") {
				seen = true
				close(listening)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-listening:
		return o, nil
	case <-o.copied:
		_ = cmd.Wait()
		return nil, fmt.Errorf("exited before listening: %s", o.buf.String())
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("captures not attached within %v", limit)
	}
}

// droppedByKernel reads "N packets dropped by kernel" from tcpdump's
// summary.
func droppedByKernel(stderr string) (uint64, error) {
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[1] == "packets" && f[2] == "dropped" && f[4] == "kernel" {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, errors.New(`no "dropped by kernel" line in tcpdump's summary`)
}

// waitStableDir waits until the files in dir (hidden ones included) stop
// growing for quiet, at most limit.
func waitStableDir(dir string, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		var size int64
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				size += fi.Size()
			}
		}
		if size != last {
			last, lastChange = size, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
