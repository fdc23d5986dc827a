package jobrunner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/storage"
)

// TestRefusedBeforeCapture: a run that cannot be done is claimed and
// ends failed at once, with a sentence saying what to change, before
// any capture starts (noCapture fails the test if one does): a job
// larger than the budget, than the file system's free space above
// min_free, a filter the agent cannot compile, an S3 destination without
// the export section. A run whose job was canceled before the claim's
// answer ends canceled without a capture.
func TestRefusedBeforeCapture(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits config.Jobs
		edit   func(*jobapi.AgentJob)
		state  string
		want   func(dir string) string // the whole error; prefix|suffix with "…"
	}{
		{
			name:   "over the budget",
			limits: config.Jobs{MaxConcurrent: 2, MaxBytes: 8 << 20, MinFree: storage.Space{Percent: 5}},
			edit:   func(j *jobapi.AgentJob) { j.MaxBytes = 1 << 30 },
			state:  "failed",
			want: func(string) string {
				return "job 1 needs up to 1.0 GiB but the agent's job budget has 8.0 MiB left (jobs.max_bytes 8.0 MiB, 0 B held): lower max_bytes or raise jobs.max_bytes"
			},
		},
		{
			name:   "over the free space",
			limits: config.Jobs{MaxConcurrent: 2, MaxBytes: 1 << 50, MinFree: storage.Space{Percent: 99.9999}},
			edit:   func(j *jobapi.AgentJob) { j.MaxBytes = 1 << 20 },
			state:  "failed",
			want: func(dir string) string {
				return "job 1 needs up to 1.0 MiB but the file system of " + dir + " has …free above jobs.min_free 99.9999%: lower max_bytes, free space there or lower jobs.min_free"
			},
		},
		{
			name:  "bad filter",
			edit:  func(j *jobapi.AgentJob) { j.Filter = "udp prot 53" },
			state: "failed",
			want:  func(string) string { return `job 1's filter "udp prot 53" does not compile on the agent: …` },
		},
		{
			name:  "s3 without export",
			edit:  func(j *jobapi.AgentJob) { j.Destination = "s3://captures/jobs/" },
			state: "failed",
			want: func(string) string {
				return "job 1's result goes to s3://captures/jobs/ but the agent's config has no export section: add export: to the agent's config file (with the store's endpoint; export: {} for AWS S3)"
			},
		},
		{
			name:  "unknown destination",
			edit:  func(j *jobapi.AgentJob) { j.Destination = "ftp://x/" },
			state: "failed",
			want: func(string) string {
				return `job 1's destination "ftp://x/" is neither console nor an s3:// URL: the agent cannot deliver it`
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeConsole(t)
			j := jobapi.AgentJob{ID: 1, Interfaces: []string{"veth0"}, Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 20}
			tc.edit(&j)
			fc.addJob(j)
			tr := mustRunner(t, fc, noCapture{t}, Options{Limits: tc.limits})
			got := waitState(t, fc, 1, tc.state, 10*time.Second)
			want := tc.want(tr.dir)
			if pre, suf, cut := strings.Cut(want, "…"); cut {
				if !strings.HasPrefix(got.errText, pre) || !strings.HasSuffix(got.errText, suf) {
					t.Errorf("error:\n%s\nwant:\n%s", got.errText, want)
				}
			} else if got.errText != want {
				t.Errorf("error:\n%s\nwant:\n%s", got.errText, want)
			}
			if diff := cmp.Diff([]string{"queued", "accepted", tc.state}, got.states()); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			if got.finishes != 1 || got.result != nil || len(got.patches) != 0 {
				t.Errorf("%d finishes, %d bytes uploaded, patches %v: want one end and no upload", got.finishes, len(got.result), got.patches)
			}
			mustEventually(t, 5*time.Second, "the run's directory removed", func() (bool, string) {
				_, err := os.Stat(runDir(tr.dir, 1))
				return errors.Is(err, fs.ErrNotExist), fmt.Sprint(err)
			})
			if m := metrics(tr.Runner); m[`ringtap_jobs_finished_total{state="failed"}`] != "1" {
				t.Errorf("failed runs metric %q, want 1", m[`ringtap_jobs_finished_total{state="failed"}`])
			}
		})
	}
}

// TestCanceledAtClaim: a run whose cancel is already requested when the
// claim is answered ends canceled without a capture.
func TestCanceledAtClaim(t *testing.T) {
	fc := newFakeConsole(t)
	fc.addJob(jobapi.AgentJob{ID: 1, Interfaces: []string{"veth0"}, Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 20})
	fc.hideCancel = true // the poll offers it as queued; the claim's answer says canceled
	fc.setRun(1, func(r *consoleRun) { r.cancel = true })
	mustRunner(t, fc, noCapture{t}, Options{})
	got := waitState(t, fc, 1, "canceled", 10*time.Second)
	if got.errText != ReasonCanceled || got.finishes != 1 {
		t.Errorf("error %q, %d finishes", got.errText, got.finishes)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 200 << 20: "200.0 MiB", 1 << 30: "1.0 GiB",
		1932735283: "1.8 GiB", 3 << 40: "3.0 TiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The README's metrics table holds every row of the runner's, as the
// runner writes them.
func TestMetricsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(MetricsTable()), "\n")
	if len(rows) != 2+len(metricDefs) {
		t.Fatalf("table of %d rows for %d metrics", len(rows), len(metricDefs))
	}
	for _, row := range rows[2:] {
		if !strings.Contains(string(readme), row+"\n") {
			t.Errorf("README.md lacks the metrics row\n%s", row)
		}
	}
}

// metrics reads the runner's metrics: "name{labels}" → value.
func metrics(r *Runner) map[string]string {
	var b strings.Builder
	r.WriteMetrics(&b)
	out := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		out[k] = v
	}
	return out
}

func waitState(t *testing.T, fc *fakeConsole, id int64, state string, d time.Duration) consoleRun {
	t.Helper()
	mustEventually(t, d, fmt.Sprintf("run %d %s", id, state), func() (bool, string) {
		r := fc.get(id)
		return r.state == state, fmt.Sprint(r.states(), " ", r.errText)
	})
	return fc.get(id)
}
