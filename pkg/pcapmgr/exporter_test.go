package pcapmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/storage"
)

// fakeUploader is an exporter whose n-th Run (from 1) does what run says;
// it records when each Run started and returned.
type fakeUploader struct {
	run func(ctx context.Context, n int) error

	mu             sync.Mutex
	starts, ends   []time.Time
	drains, closes int
}

func (f *fakeUploader) Run(ctx context.Context) error {
	f.mu.Lock()
	f.starts = append(f.starts, time.Now())
	n := len(f.starts)
	f.mu.Unlock()
	defer func() { // also when run panics
		f.mu.Lock()
		f.ends = append(f.ends, time.Now())
		f.mu.Unlock()
	}()
	return f.run(ctx, n)
}

func (f *fakeUploader) Drain(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains++
	return 0, nil
}

func (f *fakeUploader) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

func (f *fakeUploader) Enqueue(storage.FinishedFile) error { return nil }
func (f *fakeUploader) Pending(string) bool                { return false }
func (f *fakeUploader) Stats() export.Stats                { return export.Stats{Uploads: 7} }

func (f *fakeUploader) calls() (starts, ends []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts...), append([]time.Time(nil), f.ends...)
}

// syncBuffer holds a log written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mustManagerWithCapture is a manager (not running) holding one capture,
// "web", whose exporter is x; it is stopped at cleanup if the test did
// not stop it.
func mustManagerWithCapture(t *testing.T, retryMin, retryMax time.Duration, x uploader) (*Manager, *entry, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	m := New(Options{Logger: slog.New(slog.NewTextHandler(log, nil)), RetryMin: retryMin, RetryMax: retryMax})
	d := Desired{Name: "web", Interface: "eth0", Key: "k", UploadGrace: time.Second}
	e := &entry{d: d, state: StateRunning, since: time.Now()}
	m.mu.Lock()
	m.desired[d.Name] = d
	m.entries[d.Name] = e
	m.mu.Unlock()
	m.runExporter(e, x)
	t.Cleanup(func() {
		m.closeExporter(e)
		if t.Failed() {
			t.Logf("log:\n%s", log)
		}
	})
	return m, e, log
}

func writeMetrics(m *Manager) string {
	var b strings.Builder
	m.WriteMetrics(&b)
	return b.String()
}

func mustWaitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An exporter whose Run fails (an error, a panic, a return before its
// stop) is run again after delays that grow from RetryMin; each restart
// is counted in ringtap_export_restarts_total, the panic is logged with
// its stack, and once it runs again the capture's status and readiness
// are clear.
func TestExporterRestartsAfterFailures(t *testing.T) {
	const base = 100 * time.Millisecond
	running := make(chan struct{})
	f := &fakeUploader{run: func(ctx context.Context, n int) error {
		switch n {
		case 1:
			return errors.New("list multipart uploads: connection reset")
		case 2:
			panic(errors.New("part list corrupt"))
		case 3:
			return nil // before its context ended
		}
		close(running)
		<-ctx.Done()
		return nil
	}}
	m, e, log := mustManagerWithCapture(t, base, 10*time.Second, f)
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the exporter was not run a 4th time within 10 s")
	}

	starts, ends := f.calls()
	if len(starts) != 4 || len(ends) != 3 {
		t.Fatalf("%d runs started, %d ended; want 4 and 3", len(starts), len(ends))
	}
	var prev time.Duration
	for k := 1; k < 4; k++ {
		gap := starts[k].Sub(ends[k-1])
		// The k-th restart waits base·2^(k-1) less up to 20 %.
		if low := time.Duration(float64(base<<(k-1)) * (1 - exporterJitter)); gap < low {
			t.Errorf("restart %d came %s after the failure, want at least %s", k, gap, low)
		}
		if gap <= prev {
			t.Errorf("restart %d came %s after the failure, not later than restart %d's %s", k, gap, k-1, prev)
		}
		prev = gap
	}

	metrics := writeMetrics(m)
	for _, want := range []string{
		"# TYPE ringtap_export_restarts_total counter\n",
		"ringtap_export_restarts_total{capture=\"web\"} 3\n",
		"ringtap_export_uploads_total{capture=\"web\"} 7\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	l := log.String()
	if n := strings.Count(l, `msg="uploads failed: restarting them"`); n != 3 {
		t.Errorf("%d failures logged, want 3", n)
	}
	for _, want := range []string{
		`level=ERROR msg="uploads panicked" capture=web panic="part list corrupt"`,
		"exporter_test.go", // the panicking frame, in the stack
		`error="list multipart uploads: connection reset"`,
		`error="panic: part list corrupt"`,
		`error="uploads ended before they were stopped"`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	// Running again: nothing to report.
	if got := m.Captures()[0].LastError; got != "" {
		t.Errorf("LastError %q once the uploads run again, want none", got)
	}
	if ok, reason := m.Ready(); !ok {
		t.Errorf("not ready once the uploads run again: %s", reason)
	}

	m.closeExporter(e)
	if starts, _ := f.calls(); len(starts) != 4 {
		t.Errorf("%d runs after the stop, want 4: the stop restarted it", len(starts))
	}
	if f.drains != 1 || f.closes != 1 {
		t.Errorf("stop drained %d and closed %d times, want 1 and 1", f.drains, f.closes)
	}
}

// While an exporter waits to be restarted, the capture's status and
// Ready say why, and stopping it does not wait for the backoff.
func TestExporterStopDuringBackoff(t *testing.T) {
	f := &fakeUploader{run: func(context.Context, int) error { return errors.New("store client broken") }}
	m, e, _ := mustManagerWithCapture(t, time.Minute, time.Hour, f)
	mustWaitFor(t, 5*time.Second, "the exporter in backoff", func() bool {
		ok, _ := m.Ready()
		return !ok
	})

	const want = "uploads restarting after: store client broken"
	if got := m.Captures()[0].LastError; got != want {
		t.Errorf("LastError %q in backoff, want %q", got, want)
	}
	if _, reason := m.Ready(); !strings.HasPrefix(reason, "capture web: "+want+" (retry in ") {
		t.Errorf("Ready's reason %q, want capture web: %s (retry in ...)", reason, want)
	}
	if metrics := writeMetrics(m); !strings.Contains(metrics, "ringtap_export_restarts_total{capture=\"web\"} 0\n") {
		t.Errorf("metrics lack restarts 0 before any restart:\n%s", metrics)
	}

	start := time.Now()
	m.closeExporter(e)
	if took := time.Since(start); took > time.Second {
		t.Errorf("stop during a 1 min backoff took %s, want it prompt", took)
	}
	if starts, _ := f.calls(); len(starts) != 1 {
		t.Errorf("%d runs, want 1", len(starts))
	}
	if f.drains != 1 || f.closes != 1 {
		t.Errorf("stop drained %d and closed %d times, want 1 and 1", f.drains, f.closes)
	}
	if ok, reason := m.Ready(); !ok {
		t.Errorf("not ready after the exporter stopped: %s", reason)
	}
	if metrics := writeMetrics(m); strings.Contains(metrics, "ringtap_export_") {
		t.Errorf("export metrics of a stopped exporter:\n%s", metrics)
	}
}

// The restart delays double from RetryMin up to RetryMax, each less at
// most exporterJitter of it, so that consecutive ones below the cap never
// overlap.
func TestExporterDelay(t *testing.T) {
	m := New(Options{RetryMin: time.Second, RetryMax: 10 * time.Second})
	tests := []struct {
		failures int
		max      time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 10 * time.Second},
		{60, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.failures), func(t *testing.T) {
			low := time.Duration(float64(tt.max) * (1 - exporterJitter))
			for range 200 {
				if d := m.exporterDelay(tt.failures); d < low || d > tt.max {
					t.Fatalf("delay %s after %d failures, want %s to %s", d, tt.failures, low, tt.max)
				}
			}
		})
	}
}

// Every family WriteMetrics writes for a capture with an exporter is in
// MetricsTable (which README's metrics table is checked against) with its
// type, and each export row of the table is written.
func TestWriteMetricsListed(t *testing.T) {
	f := &fakeUploader{run: func(ctx context.Context, _ int) error { <-ctx.Done(); return nil }}
	m, _, _ := mustManagerWithCapture(t, time.Second, time.Minute, f)
	table := MetricsTable()
	written := map[string]bool{}
	for l := range strings.SplitSeq(writeMetrics(m), "\n") {
		rest, ok := strings.CutPrefix(l, "# TYPE ")
		if !ok {
			continue
		}
		name, typ, _ := strings.Cut(rest, " ")
		written[name] = true
		if !strings.Contains(table, "| `"+name+"` | "+typ+" |") {
			t.Errorf("MetricsTable lacks %s, a %s WriteMetrics writes", name, typ)
		}
	}
	for _, d := range exportMetrics {
		if !written[d.name] {
			t.Errorf("WriteMetrics does not write %s for a capture with an exporter", d.name)
		}
	}
}
