package bench

import (
	"fmt"
	"io"
	"sort"
)

// Summary is the median of a scenario's runs for one tool.
type Summary struct {
	Scenario    string  `json:"scenario"`
	Tool        string  `json:"tool"`
	Runs        int     `json:"runs"`
	Offered     float64 `json:"offered"`
	Captured    float64 `json:"captured"`
	LossPct     float64 `json:"loss_pct"`
	GenPPS      float64 `json:"generator_pps"`
	GenRatio    float64 `json:"generator_ratio"`
	CapturedPPS float64 `json:"captured_pps"`
	CPUPerMpkt  float64 `json:"cpu_seconds_per_million_packets"`
	CPUNsPerPkt float64 `json:"cpu_ns_per_packet"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	OutputBytes float64 `json:"output_bytes"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize takes the median of each figure per scenario and tool, in the
// order they first appear.
func Summarize(results []Result) []Summary {
	type key struct{ sc, tool string }
	var order []key
	groups := map[key][]Result{}
	for _, r := range results {
		k := key{r.Scenario, r.Tool}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Summary
	for _, k := range order {
		rs := groups[k]
		med := func(f func(Result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		out = append(out, Summary{
			Scenario: k.sc, Tool: k.tool, Runs: len(rs),
			Offered:     med(func(r Result) float64 { return float64(r.Offered) }),
			Captured:    med(func(r Result) float64 { return float64(r.Captured) }),
			LossPct:     med(func(r Result) float64 { return r.LossPct }),
			GenPPS:      med(func(r Result) float64 { return r.GenPPS }),
			GenRatio:    med(func(r Result) float64 { return r.GenRatio }),
			CapturedPPS: med(func(r Result) float64 { return r.CapturedPPS }),
			CPUPerMpkt:  med(func(r Result) float64 { return r.CPUPerMpkt }),
			CPUNsPerPkt: med(func(r Result) float64 { return r.CPUNsPerPkt }),
			PeakRSSMiB:  med(func(r Result) float64 { return r.PeakRSSMiB }),
			OutputBytes: med(func(r Result) float64 { return float64(r.OutputBytes) }),
		})
	}
	return out
}

// WriteTable prints summaries as a Markdown table.
func WriteTable(w io.Writer, sums []Summary) {
	fmt.Fprintln(w, "| scenario | tool | runs | offered | captured | loss % | gen Mpps | gen ratio | captured Mpps | CPU s/Mpkt | CPU ns/pkt | peak RSS MiB | output MB |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, s := range sums {
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | %.1f | %.1f |\n",
			s.Scenario, s.Tool, s.Runs, s.Offered, s.Captured, s.LossPct, s.GenPPS/1e6, s.GenRatio,
			s.CapturedPPS/1e6, s.CPUPerMpkt, s.CPUNsPerPkt, s.PeakRSSMiB, s.OutputBytes/1e6)
	}
}
