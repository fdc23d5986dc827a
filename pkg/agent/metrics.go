package agent

import (
	"fmt"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// The agent's own metrics, defined here and nowhere else, written at
// scrape time from the tree and the StatusSource (captures come and go, so
// nothing is registered). Counters are named ringtap_<subsystem>_<name>_total.
// MetricsTable lists them with their meaning; README's table is its output.
var (
	metricComponentRestarts = metricDef{"ringtap_agent_component_restarts_total", "counter", "component",
		"Times the supervisor ran the component again after it failed (returned an error, returned early or panicked)."}
	metricComponentUp = metricDef{"ringtap_agent_component_up", "gauge", "component",
		"1 while the component runs, 0 while it waits in restart backoff or is stopped."}
	metricCaptureUp = metricDef{"ringtap_capture_up", "gauge", "capture, interface",
		"1 while the capture is running, 0 in any other state (starting, waiting_for_interface, stopping, failed)."}
)

// captureMetrics are the per-capture counters, in the order written.
var captureMetrics = []struct {
	metricDef
	value func(CaptureStatus) uint64
}{
	{metricDef{"ringtap_capture_packets_seen_total", "counter", "capture, interface",
		"Frames the capture's BPF hook ran on, before the filter."}, func(c CaptureStatus) uint64 { return c.Seen }},
	{metricDef{"ringtap_capture_packets_matched_total", "counter", "capture, interface",
		"Frames the capture's filter accepted."}, func(c CaptureStatus) uint64 { return c.Matched }},
	{metricDef{"ringtap_capture_packets_captured_total", "counter", "capture, interface",
		"Matched frames copied into a ring buffer."}, func(c CaptureStatus) uint64 { return c.Captured }},
	{metricDef{"ringtap_capture_ring_drops_total", "counter", "capture, interface",
		"Matched frames lost because the ring buffer was full (readers too slow)."}, func(c CaptureStatus) uint64 { return c.RingDrops }},
	{metricDef{"ringtap_capture_copy_failures_total", "counter", "capture, interface",
		"Matched frames lost because copying their bytes into the ring failed (should stay 0)."}, func(c CaptureStatus) uint64 { return c.CopyFailures }},
	{metricDef{"ringtap_capture_bytes_total", "counter", "capture, interface",
		"Bytes of captured frames (as cut to the snap length)."}, func(c CaptureStatus) uint64 { return c.Bytes }},
	{metricDef{"ringtap_capture_packets_written_total", "counter", "capture, interface",
		"Packets committed to capture files."}, func(c CaptureStatus) uint64 { return c.Written }},
	{metricDef{"ringtap_capture_write_drops_total", "counter", "capture, interface",
		"Captured packets not written: a write error, or disk or compressor too slow."}, func(c CaptureStatus) uint64 { return c.WriteDrops }},
	{metricDef{"ringtap_capture_files_total", "counter", "capture, interface",
		"Capture files finished under their final name."}, func(c CaptureStatus) uint64 { return c.Files }},
}

// metricDef is one metric family the agent writes.
type metricDef struct {
	Name, Type, Labels, Help string
}

// allMetrics lists every family the agent writes itself, in the order of
// MetricsTable.
func allMetrics() []metricDef {
	defs := []metricDef{metricComponentRestarts, metricComponentUp, metricCaptureUp}
	for _, m := range captureMetrics {
		defs = append(defs, m.metricDef)
	}
	return defs
}

// MetricsTable returns the agent's metrics as a Markdown table, for the
// README. The process and Go runtime metrics (process_*, go_*) that
// /metrics also serves are not listed.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, d := range allMetrics() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Name, d.Type, d.Labels, d.Help)
	}
	return b.String()
}

// writeHeader writes a family's HELP and TYPE lines, once per scrape.
func (d metricDef) writeHeader(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.Name, escapeHelp(d.Help), d.Name, d.Type)
}

// writeMetrics writes the whole /metrics body: the process and Go runtime
// metrics, the agent's own, then each extra writer's.
//
// The agent's samples are written here rather than with
// metrics.WriteCounterUint64: with metrics.ExposeMetadata(true) that
// writes HELP and TYPE lines before every sample, which repeats them for a
// family with several captures and makes the page invalid Prometheus text.
// Writing each family's header once and then its samples is valid either
// way.
func writeMetrics(w io.Writer, comps []ComponentStatus, caps []CaptureStatus, extra []func(io.Writer)) {
	metrics.WriteProcessMetrics(w)

	if len(comps) > 0 {
		metricComponentRestarts.writeHeader(w)
		for _, c := range comps {
			fmt.Fprintf(w, "%s{component=\"%s\"} %d\n", metricComponentRestarts.Name, escapeLabel(c.Name), c.Restarts)
		}
		metricComponentUp.writeHeader(w)
		for _, c := range comps {
			fmt.Fprintf(w, "%s{component=\"%s\"} %d\n", metricComponentUp.Name, escapeLabel(c.Name), b2u(c.State == StateRunning))
		}
	}
	if len(caps) > 0 {
		labels := make([]string, len(caps))
		for i, c := range caps {
			labels[i] = fmt.Sprintf("{capture=\"%s\",interface=\"%s\"}", escapeLabel(c.Name), escapeLabel(c.Interface))
		}
		metricCaptureUp.writeHeader(w)
		for i, c := range caps {
			fmt.Fprintf(w, "%s%s %d\n", metricCaptureUp.Name, labels[i], b2u(c.State == CaptureRunning))
		}
		for _, m := range captureMetrics {
			m.writeHeader(w)
			for i, c := range caps {
				fmt.Fprintf(w, "%s%s %d\n", m.Name, labels[i], m.value(c))
			}
		}
	}
	for _, f := range extra {
		f(w)
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// escapeLabel escapes a label value for the Prometheus text format:
// backslash, double quote and line feed; invalid UTF-8 becomes U+FFFD.
func escapeLabel(s string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

// escapeHelp escapes a HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return helpEscaper.Replace(s)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)
