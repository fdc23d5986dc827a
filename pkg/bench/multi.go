package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Filter sets of the multi-capture benchmark. The generator sends N flows
// (UDP source ports 40000 ... 40000+N-1, round robin) in both.
const (
	// ModeDisjoint: capture i's filter is "udp src port 40000+i", so each
	// frame matches exactly one capture and each capture gets 1/N of the
	// frames. Copies stay one per frame whatever N is.
	ModeDisjoint = "disjoint"
	// ModeOverlap: capture i's filter is "udp and not src port 50000+i",
	// different for each capture but matched by every frame: N captures
	// want N copies of each frame. ringtap still writes one ring record
	// (with a mask); tcpdump's N sockets each copy the frame.
	ModeOverlap = "overlap"
	// ModeSingle labels the one-capture runs, the reference both modes
	// are compared against.
	ModeSingle = "single"
)

// FlowBasePort is the UDP source port of the generator's first flow.
const FlowBasePort = 40000

// MultiFilters are the n filters of mode.
func MultiFilters(mode string, n int) ([]string, error) {
	var out []string
	for i := range n {
		switch mode {
		case ModeDisjoint, ModeSingle:
			out = append(out, fmt.Sprintf("udp src port %d", FlowBasePort+i))
		case ModeOverlap:
			out = append(out, fmt.Sprintf("udp and not src port %d", 50000+i))
		default:
			return nil, fmt.Errorf("unknown filter set %q: use %s or %s", mode, ModeDisjoint, ModeOverlap)
		}
	}
	return out, nil
}

// MultiExpected is what each of the n captures of mode must get when sent
// frames went out over n flows: LiveSender.SetFlows numbers frames from 1
// and gives frame k the port FlowBasePort + k%n, so port base+i gets
// sent/n frames and one more for 1 <= i <= sent%n.
func MultiExpected(mode string, n int, sent uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		if mode != ModeDisjoint || n == 1 {
			out[i] = sent
			continue
		}
		q, r := sent/uint64(n), sent%uint64(n)
		out[i] = q
		if i >= 1 && uint64(i) <= r {
			out[i]++
		}
	}
	return out
}

// ParseCounts reads a comma-separated list of capture counts (1 to 64).
func ParseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("capture count %q: use whole numbers from 1 to 64, e.g. 1,4,16", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// MultiScenarios are the scenarios of the multi-capture benchmark: a
// monitor port (frames to a foreign MAC, dropped after capture) and host
// traffic (frames to the receiver, passed up the stack), at XDP (the first
// two, the default) and at TCX ingress (the -tc ones, where the separate
// layout can run too).
var MultiScenarios = []Scenario{
	{Name: "monitor", Monitor: true, Hook: "xdp"},
	{Name: "host", Hook: "xdp"},
	{Name: "monitor-tc", Monitor: true, Hook: "tc"},
	{Name: "host-tc", Hook: "tc"},
}

// DefaultMultiScenarios are the scenarios run when none are named.
var DefaultMultiScenarios = MultiScenarios[:2]

// ParseMultiScenarios picks multi-capture scenarios by name.
func ParseMultiScenarios(list string) ([]Scenario, error) {
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range MultiScenarios {
			if s.Name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown multi-capture scenario %q: use monitor, host, monitor-tc or host-tc", name)
		}
	}
	return out, nil
}

// Layouts of ringtap's N captures on one interface.
const (
	// LayoutShared is what ships: one Engine, so one program per hook
	// with a filter slot per capture, one set of rings, one ring record
	// per frame with a mask of the captures that matched it.
	LayoutShared = "shared"
	// LayoutSeparate is the TCX multi-attach alternative: an Engine per
	// capture, so N programs on the hook, each with its own rings, each
	// copying every frame its capture matches into them. TC scenarios
	// only: an interface takes one XDP program.
	LayoutSeparate = "separate"
)

// ParseLayouts reads a comma-separated list of layouts, each at most once.
func ParseLayouts(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f != LayoutShared && f != LayoutSeparate {
			return nil, fmt.Errorf("unknown capture layout %q: use %s, %s or both", f, LayoutShared, LayoutSeparate)
		}
		if seen[f] {
			return nil, fmt.Errorf("capture layout %q listed twice: name each once", f)
		}
		seen[f] = true
		out = append(out, f)
	}
	return out, nil
}

// MultiResult is one run of N captures by one tool.
type MultiResult struct {
	Scenario string `json:"scenario"`
	Mode     string `json:"filters"`
	Captures int    `json:"captures"`
	Tool     string `json:"tool"`
	// Layout of ringtap's captures: LayoutShared or LayoutSeparate.
	Layout string `json:"layout,omitempty"`
	Round  int    `json:"round"`
	Rate   uint64 `json:"rate_pps_requested"`
	// Error: the run could not be made (e.g. the captures could not be
	// attached); the figures are empty.
	Error string `json:"error,omitempty"`
	// StartSeconds: how long the ringtap worker took to attach its N
	// captures (one program rebuild and verification per capture).
	StartSeconds float64 `json:"start_seconds,omitempty"`
	Offered      uint64  `json:"offered"`
	GenPPS       float64 `json:"generator_pps"`
	// Expected and Captured sum over the captures: what their filters
	// select and what reached their files (counted in the files).
	Expected   uint64   `json:"expected"`
	Captured   uint64   `json:"captured"`
	PerCapture []uint64 `json:"captured_per_capture"`
	LossPct    float64  `json:"loss_pct"`
	// Complete: every capture's file has exactly what its filter selects.
	Complete bool `json:"complete"`
	// Drops the tool reported: tcpdump's "dropped by kernel", ringtap's
	// ring and write drops, summed over captures.
	Drops uint64 `json:"tool_drops"`
	// ProcessCPUNs: CPU time of the capturing processes (all N tcpdumps,
	// or the one ringtap worker) from the generator's start until their
	// output stopped growing.
	ProcessCPUNs float64 `json:"process_cpu_ns"`
	// SystemCPUNs: over that window, the CPU time of the capturing
	// processes, of the generator's process (whose thread runs the veth
	// receive path, the XDP program, AF_PACKET's copies: softirq raised
	// in process context is charged to that thread on kernels without
	// IRQ_TIME_ACCOUNTING) and of the ksoftirqd threads (softirq left
	// over). BaseCPUNsPerPkt is the same per frame for the generator
	// alone with a bare XDP program (mean of the baselines before and
	// after the run).
	SystemCPUNs     float64 `json:"system_cpu_ns"`
	BaseCPUNsPerPkt float64 `json:"baseline_system_cpu_ns_per_packet"`
	// WholeCPUNs, WholeBaseNsPerPkt: the same for the whole machine (every
	// CPU's time less its idle time, from cpuidle), which includes other
	// processes' load: OtherLoadNs is WholeCPUNs - SystemCPUNs.
	WholeCPUNs        float64 `json:"whole_system_cpu_ns"`
	WholeBaseNsPerPkt float64 `json:"baseline_whole_system_cpu_ns_per_packet"`
	OtherLoadNs       float64 `json:"other_load_ns"`
	// KernelProgNs and KernelProgRuns: run_time_ns and run_cnt of
	// ringtap's XDP program over the window (BPF_STATS_RUN_TIME), or at
	// TC summed over every program on the interface's TCX ingress
	// (KernelProgs of them: N for LayoutSeparate).
	KernelProgNs   float64 `json:"kernel_prog_ns,omitempty"`
	KernelProgRuns uint64  `json:"kernel_prog_runs,omitempty"`
	KernelProgs    int     `json:"kernel_progs,omitempty"`
	// Records: ring records ringtap's program wrote (one per frame that
	// any capture matched).
	Records uint64 `json:"ring_records,omitempty"`
	// Per offered frame.
	KernelNsPerPkt  float64 `json:"kernel_prog_ns_per_packet"`
	ProcessNsPerPkt float64 `json:"process_cpu_ns_per_packet"`
	SystemNsPerPkt  float64 `json:"system_cpu_ns_per_packet"`
	WholeNsPerPkt   float64 `json:"whole_system_cpu_ns_per_packet"`
}

// MultiSummary is the median of a (scenario, filters, captures, tool)
// group's runs, with ratios against the tool's one-capture row of the same
// scenario ("X1") and, for tcpdump, against ringtap's row.
type MultiSummary struct {
	Scenario        string  `json:"scenario"`
	Mode            string  `json:"filters"`
	Captures        int     `json:"captures"`
	Tool            string  `json:"tool"`
	Layout          string  `json:"layout,omitempty"`
	Runs            int     `json:"runs"`
	Failed          int     `json:"failed_runs"`
	CompleteRuns    int     `json:"complete_runs"`
	Offered         float64 `json:"offered"`
	Expected        float64 `json:"expected"`
	Captured        float64 `json:"captured"`
	LossPct         float64 `json:"loss_pct"`
	Drops           float64 `json:"tool_drops"`
	GenPPS          float64 `json:"generator_pps"`
	RecordsPerFrame float64 `json:"ring_records_per_frame"`
	KernelNsPerPkt  float64 `json:"kernel_prog_ns_per_packet"`
	ProcessNsPerPkt float64 `json:"process_cpu_ns_per_packet"`
	SystemNsPerPkt  float64 `json:"system_cpu_ns_per_packet"`
	WholeNsPerPkt   float64 `json:"whole_system_cpu_ns_per_packet"`
	OtherLoadMs     float64 `json:"other_load_ms"`
	StartSeconds    float64 `json:"start_seconds,omitempty"`
	KernelX1        float64 `json:"kernel_vs_one_capture"`
	ProcessX1       float64 `json:"process_vs_one_capture"`
	SystemX1        float64 `json:"system_vs_one_capture"`
	// SystemVsRingtap: this row's system CPU per frame over ringtap's in
	// the same scenario, filters and captures (tcpdump rows).
	SystemVsRingtap  float64 `json:"system_vs_ringtap,omitempty"`
	ProcessVsRingtap float64 `json:"process_vs_ringtap,omitempty"`
}

// SummarizeMulti takes medians per group (scenario, filters, captures,
// tool, layout), in the order groups first appear, and fills in the ratios:
// ×1 against the same tool and layout, tcpdump's against ringtap's shared
// layout.
func SummarizeMulti(results []MultiResult) []MultiSummary {
	type key struct {
		sc, mode, tool, layout string
		n                      int
	}
	var order []key
	groups := map[key][]MultiResult{}
	failed := map[key]int{}
	for _, r := range results {
		k := key{r.Scenario, r.Mode, r.Tool, r.Layout, r.Captures}
		if _, ok := groups[k]; !ok && failed[k] == 0 {
			order = append(order, k)
		}
		if r.Error != "" {
			failed[k]++
			continue
		}
		groups[k] = append(groups[k], r)
	}
	var out []MultiSummary
	for _, k := range order {
		rs := groups[k]
		med := func(f func(MultiResult) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		s := MultiSummary{Scenario: k.sc, Mode: k.mode, Captures: k.n, Tool: k.tool, Layout: k.layout, Runs: len(rs), Failed: failed[k],
			Offered:         med(func(r MultiResult) float64 { return float64(r.Offered) }),
			Expected:        med(func(r MultiResult) float64 { return float64(r.Expected) }),
			Captured:        med(func(r MultiResult) float64 { return float64(r.Captured) }),
			LossPct:         med(func(r MultiResult) float64 { return r.LossPct }),
			Drops:           med(func(r MultiResult) float64 { return float64(r.Drops) }),
			GenPPS:          med(func(r MultiResult) float64 { return r.GenPPS }),
			RecordsPerFrame: med(func(r MultiResult) float64 { return ratio(float64(r.Records), float64(r.Offered)) }),
			KernelNsPerPkt:  med(func(r MultiResult) float64 { return r.KernelNsPerPkt }),
			ProcessNsPerPkt: med(func(r MultiResult) float64 { return r.ProcessNsPerPkt }),
			SystemNsPerPkt:  med(func(r MultiResult) float64 { return r.SystemNsPerPkt }),
			WholeNsPerPkt:   med(func(r MultiResult) float64 { return r.WholeNsPerPkt }),
			OtherLoadMs:     med(func(r MultiResult) float64 { return r.OtherLoadNs / 1e6 }),
			StartSeconds:    med(func(r MultiResult) float64 { return r.StartSeconds }),
		}
		for _, r := range rs {
			if r.Complete {
				s.CompleteRuns++
			}
		}
		out = append(out, s)
	}
	find := func(sc, mode, tool, layout string, n int) *MultiSummary {
		for i := range out {
			if s := &out[i]; s.Scenario == sc && s.Tool == tool && sameLayout(s.Layout, layout) && s.Captures == n && (s.Mode == mode || n == 1) {
				return s
			}
		}
		return nil
	}
	for i := range out {
		s := &out[i]
		if one := find(s.Scenario, s.Mode, s.Tool, s.Layout, 1); one != nil {
			s.KernelX1 = ratio(s.KernelNsPerPkt, one.KernelNsPerPkt)
			s.ProcessX1 = ratio(s.ProcessNsPerPkt, one.ProcessNsPerPkt)
			s.SystemX1 = ratio(s.SystemNsPerPkt, one.SystemNsPerPkt)
		}
		if s.Tool != "ringtap" {
			if rt := find(s.Scenario, s.Mode, "ringtap", LayoutShared, s.Captures); rt != nil {
				s.SystemVsRingtap = ratio(s.SystemNsPerPkt, rt.SystemNsPerPkt)
				s.ProcessVsRingtap = ratio(s.ProcessNsPerPkt, rt.ProcessNsPerPkt)
			}
		}
	}
	return out
}

// sameLayout: layouts a and b are the same, "" being LayoutShared (runs
// recorded before layouts were).
func sameLayout(a, b string) bool {
	if a == "" {
		a = LayoutShared
	}
	if b == "" {
		b = LayoutShared
	}
	return a == b
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// WriteMultiTable prints multi-capture summaries as a Markdown table. CPU
// figures are per offered frame; "×1" is against the same tool's one
// capture; "÷ringtap" is tcpdump's figure over ringtap's. ringtap's
// separate layout shows as the tool "ringtap (separate)".
func WriteMultiTable(w io.Writer, sums []MultiSummary) {
	fmt.Fprintln(w, "| scenario | filters | captures | tool | runs | complete | offered | captured / expected | loss % | tool drops | records/frame | kernel prog ns/pkt | ×1 | process CPU ns/pkt | ×1 | system CPU ns/pkt | ×1 | system ÷ringtap | whole-machine ns/pkt | other load ms |")
	fmt.Fprintln(w, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	dash := func(v float64, format string) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	for _, s := range sums {
		tool := s.Tool
		if s.Layout == LayoutSeparate {
			tool += " (separate)"
		}
		if s.Runs == 0 {
			fmt.Fprintf(w, "| %s | %s | %d | %s | 0 (%d failed) | | | | | | | | | | | | | | | |\n", s.Scenario, s.Mode, s.Captures, tool, s.Failed)
			continue
		}
		runs := strconv.Itoa(s.Runs)
		if s.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", s.Failed)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %d | %.0f | %.0f / %.0f | %.3f | %.0f | %s | %s | %s | %.0f | %.2f | %.0f | %.2f | %s | %.0f | %.0f |\n",
			s.Scenario, s.Mode, s.Captures, tool, runs, s.CompleteRuns, s.Offered, s.Captured, s.Expected, s.LossPct, s.Drops,
			dash(s.RecordsPerFrame, "%.2f"), dash(s.KernelNsPerPkt, "%.0f"), dash(s.KernelX1, "%.2f"),
			s.ProcessNsPerPkt, s.ProcessX1, s.SystemNsPerPkt, s.SystemX1, dash(s.SystemVsRingtap, "%.2f"),
			s.WholeNsPerPkt, s.OtherLoadMs)
	}
}
