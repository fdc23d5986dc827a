// Command ringtap-bench measures ringtap against tcpdump on a veth pair of
// its own, side by side in one run. See BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/bench"
	"github.com/ringtap/ringtap/pkg/signals"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "ringtap-bench: %v\n", err)
		os.Exit(1)
	}
}

type report struct {
	Machine   string          `json:"machine"`
	Command   string          `json:"command"`
	Started   time.Time       `json:"started"`
	Config    bench.Config    `json:"config"`
	Runs      []bench.Result  `json:"runs,omitempty"`
	Summary   []bench.Summary `json:"summary,omitempty"`
	MaxRates  []bench.MaxRate `json:"max_rates,omitempty"`
	SoakRun   *bench.Result   `json:"soak,omitempty"`
	SoakRate  uint64          `json:"soak_rate_pps,omitempty"`
	TargetMet map[string]bool `json:"targets,omitempty"`
	// The multi-capture benchmark (-captures).
	MultiConfig  *bench.MultiConfig   `json:"multi_config,omitempty"`
	MultiRuns    []bench.MultiResult  `json:"multi_runs,omitempty"`
	MultiSummary []bench.MultiSummary `json:"multi_summary,omitempty"`
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == bench.WorkerCommand {
		ctx, stop := signals.TwoStep(context.Background(), func(os.Signal) { os.Exit(130) })
		defer stop()
		return bench.RunWorker(ctx, os.Args[2:], os.Stdout, os.Stderr)
	}
	if len(os.Args) > 1 && os.Args[1] == consoleLoadCommand {
		ctx, stop := signals.TwoStep(context.Background(), func(os.Signal) { os.Exit(130) })
		defer stop()
		return runConsoleLoad(ctx, os.Args[2:])
	}
	var (
		cfg       bench.Config
		scenarios = flag.String("scenarios", "monitor,host-xdp,host-tc,reject,host-reject", "comma-separated scenarios: monitor, host-xdp, host-tc, reject, host-reject")
		tools     = flag.String("tools", "ringtap,tcpdump", "tools to compare")
		jsonPath  = flag.String("json", "", "write the full report here")
		findMax   = flag.String("find-max", "", "bisect the zero-loss rate of each tool for this scenario (e.g. monitor)")
		steps     = flag.Int("steps", 6, "bisection steps for -find-max")
		soak      = flag.Duration("soak", 0, "after -find-max, run ringtap this long at 80% of its zero-loss rate, sampling RSS")
		rate      = flag.Uint64("rate", 0, "generator rate in frames/s for the rounds (0: top rate)")
		rtArgs    = flag.String("ringtap-args", "", "extra flags for ringtap capture, space-separated (e.g. --cpuprofile=/tmp/rt.pprof)")
		captures  = flag.String("captures", "", "run the multi-capture benchmark instead (and nothing else): this many captures on one interface, e.g. 1,4,16; "+
			"-rate defaults to 50000, -packets to 1.5 s worth, -B to 32768, -tools to ringtap,tcpdump")
		capFilters   = flag.String("capture-filters", "disjoint,overlap", "filter sets for -captures: disjoint (each frame matches one capture), overlap (every frame matches every capture)")
		capScenarios = flag.String("capture-scenarios", "monitor,host", "scenarios for -captures: monitor, host (at XDP), monitor-tc, host-tc (at TCX ingress)")
		capLayouts   = flag.String("capture-layouts", "shared", "layouts of ringtap's captures for -captures: shared (one program, copy once), separate (a program and rings per capture, TCX multi-attach; -tc scenarios only)")
	)
	flag.StringVar(&cfg.Ringtap, "ringtap", "bin/ringtap", "ringtap binary")
	flag.StringVar(&cfg.Tcpdump, "tcpdump", "tcpdump", "tcpdump binary")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "rounds per scenario (median reported)")
	flag.Uint64Var(&cfg.Packets, "packets", 2_000_000, "frames offered per run")
	flag.IntVar(&cfg.FrameSize, "size", 64, "frame size in bytes (64, 512, 1500 ...)")
	flag.IntVar(&cfg.SnapLen, "snaplen", 128, "snapshot length for both tools")
	flag.IntVar(&cfg.RingSize, "ring-size", 8<<20, "ringtap per-CPU ring size")
	flag.IntVar(&cfg.BufferKiB, "B", 256<<10, "tcpdump -B buffer in KiB")
	flag.StringVar(&cfg.ToolCPUs, "tool-cpus", "", `taskset CPU list for the capturing process ("": every CPU but -gen-cpu; "all": no pinning)`)
	flag.IntVar(&cfg.Flows, "flows", 1, "vary the UDP source port over this many flows (1: one flow)")
	flag.IntVar(&cfg.GenCPU, "gen-cpu", 0, "pin the generator (and so the kernel side of the capture) to this CPU; -1 lets it float")
	flag.Func("variant", "a ringtap variant to run as a tool of its own, label=[bin=PATH] [env:K=V] [flags] (repeatable; list the label in -tools)", func(s string) error {
		label, v, err := bench.ParseVariant(s)
		if err != nil {
			return err
		}
		if cfg.Variants == nil {
			cfg.Variants = map[string]bench.Variant{}
		}
		cfg.Variants[label] = v
		return nil
	})
	flag.Parse()

	var err error
	if cfg.Scenarios, err = bench.ParseScenarios(*scenarios); err != nil {
		return err
	}
	cfg.Tools = strings.Split(*tools, ",")
	cfg.RingtapArgs = strings.Fields(*rtArgs)
	ctx, stop := signals.TwoStep(context.Background(), func(os.Signal) { os.Exit(130) })
	defer stop()
	if *captures != "" {
		return runMulti(ctx, cfg, *captures, *capFilters, *capScenarios, *capLayouts, *rate, *jsonPath)
	}
	r, err := bench.NewRunner(cfg)
	if err != nil {
		return err
	}
	defer os.RemoveAll(r.Config().Dir)
	host, _ := os.Hostname()
	rep := report{
		Machine: fmt.Sprintf("%s, %d CPUs, %s/%s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH),
		Command: strings.Join(os.Args, " "), Started: time.Now(), Config: r.Config(),
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rep.Machine += ", kernel " + strings.TrimSpace(string(k))
	}
	if len(cfg.Scenarios) > 0 {
		rep.Runs, err = r.Rounds(ctx, *rate)
		rep.Summary = bench.Summarize(rep.Runs)
		bench.WriteTable(os.Stdout, rep.Summary)
		if err != nil {
			return errors.Join(err, write(*jsonPath, rep))
		}
	}
	if *findMax != "" {
		scs, err := bench.ParseScenarios(*findMax)
		if err != nil {
			return err
		}
		for _, sc := range scs {
			m, err := r.FindMax(ctx, sc, *steps)
			rep.MaxRates = append(rep.MaxRates, m...)
			if err != nil {
				return errors.Join(err, write(*jsonPath, rep))
			}
		}
		fmt.Println()
		fmt.Println("| scenario | tool | zero-loss Mpps | generator top Mpps |")
		fmt.Println("|---|---|---|---|")
		for _, m := range rep.MaxRates {
			fmt.Printf("| %s | %s | %.3f | %.3f |\n", m.Scenario, m.Tool, float64(m.PPS)/1e6, m.TopPPS/1e6)
		}
		if *soak > 0 {
			for _, m := range rep.MaxRates {
				if m.Tool != "ringtap" {
					continue
				}
				sc, _ := bench.ParseScenarios(m.Scenario)
				rep.SoakRate = m.PPS * 8 / 10
				res, err := r.Soak(ctx, sc[0], rep.SoakRate, *soak, 10*time.Second)
				rep.SoakRun = &res
				if err != nil {
					return errors.Join(err, write(*jsonPath, rep))
				}
				fmt.Printf("\nsoak: %v at %.3f Mpps: offered %d, captured %d, RSS MiB samples %v\n",
					*soak, float64(rep.SoakRate)/1e6, res.Offered, res.Captured, res.RSSMiB)
				break
			}
		}
	}
	return write(*jsonPath, rep)
}

// runMulti runs the multi-capture benchmark: N captures on one interface
// by ringtap (one capture-worker process of this binary, in each of
// layouts) and by tcpdump (N processes).
func runMulti(ctx context.Context, cfg bench.Config, counts, filters, scenarios, layouts string, rate uint64, jsonPath string) error {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	mc := bench.MultiConfig{
		Modes: strings.Split(filters, ","), Tools: cfg.Tools, Rounds: cfg.Rounds, Rate: rate,
		FrameSize: cfg.FrameSize, SnapLen: cfg.SnapLen, RingSize: cfg.RingSize, GenCPU: cfg.GenCPU,
		ToolCPUs: cfg.ToolCPUs, Tcpdump: cfg.Tcpdump,
	}
	var err error
	if mc.Counts, err = bench.ParseCounts(counts); err != nil {
		return err
	}
	if mc.Scenarios, err = bench.ParseMultiScenarios(scenarios); err != nil {
		return err
	}
	if mc.Layouts, err = bench.ParseLayouts(layouts); err != nil {
		return err
	}
	if set["packets"] {
		mc.Packets = cfg.Packets
	}
	if set["B"] {
		mc.BufferKiB = cfg.BufferKiB
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary for the capture worker: %w", err)
	}
	mc.Worker = []string{self, bench.WorkerCommand}
	m, err := bench.NewMultiRunner(mc)
	if err != nil {
		return err
	}
	defer os.RemoveAll(m.Config().Dir)
	eff := m.Config()
	rep := report{Machine: machine(), Command: strings.Join(os.Args, " "), Started: time.Now(), MultiConfig: &eff}
	rep.MultiRuns, err = m.Run(ctx)
	rep.MultiSummary = bench.SummarizeMulti(rep.MultiRuns)
	bench.WriteMultiTable(os.Stdout, rep.MultiSummary)
	return errors.Join(err, write(jsonPath, rep))
}

// machine describes this host for the report.
func machine() string {
	host, _ := os.Hostname()
	m := fmt.Sprintf("%s, %d CPUs, %s/%s", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m += ", kernel " + strings.TrimSpace(string(k))
	}
	return m
}

func write(path string, rep report) error {
	if path == "" {
		return nil
	}
	if err := writeJSON(path, rep); err != nil {
		return err
	}
	slog.Info("report written", "path", path)
	return nil
}
