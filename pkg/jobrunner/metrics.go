package jobrunner

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// counters are the runner's monotonic counts.
type counters struct {
	running     atomic.Int64 // captures running now
	uploadBytes atomic.Uint64
	dropped     atomic.Uint64
	ended       [3]atomic.Uint64 // finished, failed, canceled
}

var outcomes = [3]string{outcomeFinished, outcomeFailed, outcomeCanceled}

func (c *counters) finished(outcome string) {
	for i, o := range outcomes {
		if o == outcome {
			c.ended[i].Add(1)
		}
	}
}

// The runner's metrics, written at scrape time by WriteMetrics (pass it
// in the agent's HTTPOptions.ExtraMetrics); MetricsTable lists them.
var metricDefs = []struct {
	name, typ, labels, help string
}{
	{"ringtap_jobs_running", "gauge", "", "Capture jobs' runs capturing on the agent now."},
	{"ringtap_jobs_finished_total", "counter", "state", "Runs the agent ended on the console, by their end: finished, failed or canceled."},
	{"ringtap_jobs_dropped_total", "counter", "", "Runs the agent dropped because the console ended them or another claim holds them (no end reported)."},
	{"ringtap_job_uploads_pending", "gauge", "", "Runs whose result waits for its upload (in the jobs directory)."},
	{"ringtap_job_upload_bytes_total", "counter", "", "Bytes of results the console or the object store confirmed."},
	{"ringtap_job_held_bytes", "gauge", "", "Bytes of the jobs.max_bytes budget the runs hold: a capturing run its max_bytes, a finished one its file."},
}

// WriteMetrics writes the runner's metrics in the Prometheus text format.
func (r *Runner) WriteMetrics(w io.Writer) {
	pending := 0
	r.mu.Lock()
	runs := make([]*run, 0, len(r.runs))
	for _, rn := range r.runs {
		runs = append(runs, rn)
	}
	r.mu.Unlock()
	for _, rn := range runs {
		rn.mu.Lock()
		if rn.rec.State == stateUploading && rn.rec.HasFile && !rn.rec.Uploaded {
			pending++
		}
		rn.mu.Unlock()
	}
	head := func(i int) {
		d := metricDefs[i]
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", d.name, d.help, d.name, d.typ)
	}
	head(0)
	fmt.Fprintf(w, "ringtap_jobs_running %d\n", r.stats.running.Load())
	head(1)
	for i, o := range outcomes {
		fmt.Fprintf(w, "ringtap_jobs_finished_total{state=%q} %d\n", o, r.stats.ended[i].Load())
	}
	head(2)
	fmt.Fprintf(w, "ringtap_jobs_dropped_total %d\n", r.stats.dropped.Load())
	head(3)
	fmt.Fprintf(w, "ringtap_job_uploads_pending %d\n", pending)
	head(4)
	fmt.Fprintf(w, "ringtap_job_upload_bytes_total %d\n", r.stats.uploadBytes.Load())
	head(5)
	fmt.Fprintf(w, "ringtap_job_held_bytes %d\n", r.heldBytes())
}

// MetricsTable returns the runner's metrics as a Markdown table, for the
// README.
func MetricsTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, d := range metricDefs {
		labels := d.labels + " "
		if d.labels == "" {
			labels = ""
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s| %s |\n", d.name, d.typ, labels, d.help)
	}
	return b.String()
}
