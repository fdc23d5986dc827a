package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// workerEnv makes the test binary run as the capture worker, as
// ringtap-bench capture-worker does.
const workerEnv = "RINGTAP_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err := RunWorker(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "capture worker: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The multi-capture benchmark at tiny scale: 2 captures, both filter sets,
// both tools, one round of a few thousand frames. Every capture gets
// exactly what its filter selects, and ringtap writes one ring record per
// frame however many captures matched it.
func TestMultiTiny(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testbedtest.SkipOrFail(t, "needs tcpdump: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMultiRunner(MultiConfig{
		Counts: []int{2}, Scenarios: MultiScenarios[:1], Rounds: 1, Rate: 50_000, Packets: 5_000,
		Worker: []string{self}, WorkerEnv: []string{workerEnv + "=1"}, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	runs, err := m.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 2 filter sets × 2 tools", len(runs))
	}
	for _, r := range runs {
		name := fmt.Sprintf("%s %d × %s", r.Tool, r.Captures, r.Mode)
		switch {
		case r.Error != "":
			t.Errorf("%s: %s", name, r.Error)
		case r.Offered != 5_000 || !r.Complete || r.Captured != r.Expected:
			t.Errorf("%s: offered %d, captured %v (%d of %d expected)", name, r.Offered, r.PerCapture, r.Captured, r.Expected)
		case r.Tool == "ringtap" && r.Records != r.Offered:
			t.Errorf("%s: %d ring records for %d frames, want one each", name, r.Records, r.Offered)
		}
	}
	if sums := SummarizeMulti(runs); len(sums) != 4 {
		t.Errorf("%d summary rows, want 4", len(sums))
	}
}

// ringtap's two layouts at TCX ingress, 2 overlapping captures, host and
// monitor port: every capture's file is complete in both; the shared layout
// runs one program and writes one record per frame, the separate one runs
// a program per capture and writes a record per frame per capture. At the
// monitor port only the last program drops, so the first one's capture is
// complete too.
func TestMultiTinyTCLayouts(t *testing.T) {
	testbedtest.RequirePrivileged(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	scs, err := ParseMultiScenarios("host-tc,monitor-tc")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMultiRunner(MultiConfig{
		Counts: []int{2}, Modes: []string{ModeOverlap}, Scenarios: scs, Tools: []string{"ringtap"},
		Layouts: []string{LayoutShared, LayoutSeparate}, Rounds: 1, Rate: 50_000, Packets: 5_000,
		Worker: []string{self}, WorkerEnv: []string{workerEnv + "=1"}, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	runs, err := m.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 2 scenarios × 2 layouts", len(runs))
	}
	for _, r := range runs {
		name := fmt.Sprintf("%s %s %d × %s", r.Scenario, r.Layout, r.Captures, r.Mode)
		progs := 1
		if r.Layout == LayoutSeparate {
			progs = r.Captures
		}
		switch {
		case r.Error != "":
			t.Errorf("%s: %s", name, r.Error)
		case r.Offered != 5_000 || !r.Complete || r.Captured != r.Expected:
			t.Errorf("%s: offered %d, captured %v (%d of %d expected)", name, r.Offered, r.PerCapture, r.Captured, r.Expected)
		case r.KernelProgs != progs:
			t.Errorf("%s: %d programs on TCX ingress, want %d", name, r.KernelProgs, progs)
		case r.Records != uint64(progs)*r.Offered:
			t.Errorf("%s: %d ring records for %d frames, want %d each", name, r.Records, r.Offered, progs)
		case r.KernelProgRuns < uint64(progs)*r.Offered:
			t.Errorf("%s: programs ran %d times for %d frames, want at least %d each", name, r.KernelProgRuns, r.Offered, progs)
		}
	}
}

func TestWorkerFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown hook", []string{"-i", "x", "-dir", "d", "-filter", "udp", "-hook", "tcx"}, `hook "tcx": use xdp or tc`},
		{"separate at xdp", []string{"-i", "x", "-dir", "d", "-filter", "udp", "-separate"}, "-separate needs -hook tc"},
		{"no filter", []string{"-i", "x", "-dir", "d", "-hook", "tc"}, "at least one -filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			err := RunWorker(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	for in, want := range map[string]capture.Hook{"xdp": capture.HookXDP, "tc": capture.HookTC} {
		if got, err := workerHook(in); err != nil || got != want {
			t.Errorf("workerHook(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
