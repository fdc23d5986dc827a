package consoleload

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/testbed/testbedtest"
)

// TestRun runs the benchmark small (30 agents, phases of a second or two) against a
// real ringtap-console on each store, so that it cannot rot: every agent
// gets every change, the admin API shows the fleet as its agents run it
// (checked inside Run), and what it measured adds up.
func TestRun(t *testing.T) {
	if os.Getenv("RINGTAP_KERNEL_MATRIX") != "" {
		t.Skip("checks nothing of the kernel")
	}
	if os.Geteuid() != 0 {
		// PostgreSQL's cluster needs root; SQLite alone does not, but
		// one rule keeps the two rows together.
		testbedtest.SkipOrFail(t, "needs root (PostgreSQL's throwaway cluster runs as the postgres user)")
	}
	bin := filepath.Join(t.TempDir(), "ringtap-console")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ringtap-console").CombinedOutput(); err != nil {
		t.Fatalf("build ringtap-console: %v\n%s", err, out)
	}
	for _, st := range []string{"sqlite", "postgres"} {
		t.Run(st, func(t *testing.T) {
			cfg := Config{
				ConsoleBin: bin, Store: st, Agents: 30, HeartbeatInterval: time.Second, Wait: 3 * time.Second,
				Steady: 2 * time.Second, Rounds: 2, PutWorkers: 4, BurstSenders: 4, Burst: time.Second,
				DataDir: t.TempDir(), StateDir: t.TempDir(), Logf: t.Logf,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// 30 agents heartbeating every second for 2 s: about 60.
			if r.SteadyHeartbeats < 40 || r.SteadyHeartbeats > 90 {
				t.Errorf("steady heartbeats = %d, want about 60", r.SteadyHeartbeats)
			}
			if len(r.Rounds) != 2 {
				t.Fatalf("rounds = %+v", r.Rounds)
			}
			for i, rd := range r.Rounds {
				if rd.Missing != 0 || rd.P50ms <= 0 || rd.P99ms < rd.P50ms || rd.Maxms < rd.P99ms || rd.FleetMs < rd.Maxms*0.5 || rd.PutPerSec <= 0 {
					t.Errorf("round %d = %+v", i, rd)
				}
			}
			if r.ChangeP50ms <= 0 || r.ChangeMaxms > 10_000 {
				t.Errorf("change latency p50 %.1f ms, max %.1f ms", r.ChangeP50ms, r.ChangeMaxms)
			}
			if r.BurstHB < 10 || r.BurstErrors != 0 || r.BurstCPUus <= 0 {
				t.Errorf("burst: %d heartbeats, %d errors, %.0f µs each", r.BurstHB, r.BurstErrors, r.BurstCPUus)
			}
			if r.Steady.ConsoleCPUSec <= 0 || r.Steady.ConsoleRSSMiB < 5 || r.ConsoleHWMMiB < r.Steady.ConsoleRSSMiB || r.DevicesListMs <= 0 || r.MetricsScrapeMs <= 0 {
				t.Errorf("console usage: %+v, peak %.0f MiB, devices list %.1f ms, metrics scrape %.1f ms", r.Steady, r.ConsoleHWMMiB, r.DevicesListMs, r.MetricsScrapeMs)
			}
			if db := r.Burst.DBCPUSec > 0 && r.Burst.DBPssMiB > 0; db != (st == "postgres") {
				t.Errorf("database usage %+v for %s", r.Burst, st)
			}
			if st == "sqlite" && r.SQLiteFileSize <= 0 {
				t.Error("no SQLite file size")
			}
			var b strings.Builder
			WriteTable(&b, []*Result{r})
			if !strings.Contains(b.String(), "| "+st+" | 30 |") {
				t.Errorf("table:\n%s", b.String())
			}
		})
	}
}
