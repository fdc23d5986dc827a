package consoleload

import (
	"fmt"
	"io"
)

// WriteTable writes the results as the Markdown tables of BENCHMARKS.md.
func WriteTable(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| store | agents | enroll /s | steady heartbeats /s | steady console CPU (cores) | console RSS (MiB) | database CPU (cores) | database PSS (MiB) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.3f | %.0f | %s | %s |\n", storeName(r), r.Config.Agents, r.EnrollPerSec,
			r.SteadyHBPerSec, r.Steady.ConsoleCores, r.Steady.ConsoleRSSMiB, dbCol(r, "%.3f", r.Steady.DBCores), dbCol(r, "%.0f", r.Steady.DBPssMiB))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| store | rounds | PUTs /s | PUT p50 / p99 (ms) | change → agent p50 / p99 / max (ms) | whole fleet p50 / max (ms) | console CPU per change (ms) | database CPU per change (ms) | GET /devices (ms) | GET /metrics (ms) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		n := float64(len(r.Rounds) * r.Config.Agents)
		var put, p50, p99 float64
		for _, rd := range r.Rounds {
			put += rd.PutPerSec
			p50 += rd.PutP50ms
			p99 += rd.PutP99ms
		}
		k := float64(len(r.Rounds))
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f / %.1f | %.0f / %.0f / %.0f | %.0f / %.0f | %.2f | %s | %.0f | %.0f |\n", storeName(r), len(r.Rounds),
			put/k, p50/k, p99/k, r.ChangeP50ms, r.ChangeP99ms, r.ChangeMaxms, r.FleetP50ms, r.FleetMaxms,
			r.Changes.ConsoleCPUSec/n*1e3, dbCol(r, "%.2f", r.Changes.DBCPUSec/n*1e3), r.DevicesListMs, r.MetricsScrapeMs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| store | senders | heartbeats /s | p50 / p99 (ms) | console CPU (cores) | console CPU per heartbeat (µs) | database CPU (cores) | console peak RSS (MiB) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f / %.1f | %.2f | %.0f | %s | %.0f |\n", storeName(r), r.Config.BurstSenders, r.BurstHBPerSec,
			r.BurstP50ms, r.BurstP99ms, r.Burst.ConsoleCores, r.BurstCPUus, dbCol(r, "%.2f", r.Burst.DBCores), r.ConsoleHWMMiB)
	}
}

func dbCol(r *Result, format string, v float64) string {
	if r.Config.Store != "postgres" {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// storeName is the store, with a pool size that is not the default.
func storeName(r *Result) string {
	if r.Config.Store == "postgres" && r.Config.PGPoolMaxConns > 0 {
		return fmt.Sprintf("postgres (pool %d)", r.Config.PGPoolMaxConns)
	}
	return r.Config.Store
}
