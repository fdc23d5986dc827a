package jobrunner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

const jobPort = 5353

// job is a run spec on the env's capture interface.
func (e *captureEnv) job(id int64, d time.Duration) jobapi.AgentJob {
	return jobapi.AgentJob{ID: id, Interfaces: []string{e.pair.B.Link}, Filter: fmt.Sprintf("udp dst port %d", jobPort),
		SnapLen: 262144, Duration: jobapi.Duration(d), MaxBytes: 64 << 20, Destination: "console",
		ExpiresAt: time.Now().Add(time.Hour)}
}

// waitGone waits until the runner removed run id's directory.
func waitGone(t *testing.T, tr *testRunner, id int64) {
	t.Helper()
	mustEventually(t, 10*time.Second, fmt.Sprintf("run %d's directory removed", id), func() (bool, string) {
		_, err := os.Stat(runDir(tr.dir, id))
		return errors.Is(err, fs.ErrNotExist), fmt.Sprint(err)
	})
}

// TestRunFinishes: a run is claimed, captures exactly what its filter
// takes until its stop condition, reports its progress, uploads a pcapng
// that pcapio and capinfos read, ends finished once, and leaves nothing
// in the jobs directory.
func TestRunFinishes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		duration   time.Duration
		maxPackets uint64
		maxBytes   uint64
		send       int
		want       int // packets; -1: whatever fits in maxBytes
	}{
		{name: "duration", duration: 3 * time.Second, send: 25, want: 25},
		{name: "max packets", duration: time.Minute, maxPackets: 10, send: 25, want: 10},
		{name: "max bytes", duration: time.Minute, maxBytes: 8 << 10, send: 40, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := mustCaptureEnv(t)
			fc := newFakeConsole(t)
			j := env.job(1, tc.duration)
			j.MaxPackets = tc.maxPackets
			if tc.maxBytes != 0 {
				j.MaxBytes = tc.maxBytes
			}
			fc.addJob(j)
			tr := mustRunner(t, fc, env, Options{})
			waitState(t, fc, 1, "running", 10*time.Second)
			env.send(t, jobPort, tc.send, 300)
			env.send(t, jobPort+1, 10, 300) // not the filter's
			waitState(t, fc, 1, "finished", 20*time.Second)
			waitGone(t, tr, 1)
			got := fc.get(1) // after the directory is gone: the last word
			if diff := cmp.Diff([]string{"queued", "accepted", "running", "uploading", "finished"}, got.states()); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			pkts := readPackets(t, got.result)
			want := tc.want
			if want < 0 {
				want = len(pkts)
				if want == 0 || len(got.result) > int(tc.maxBytes) {
					t.Errorf("max bytes %d: the result has %d packets in %d bytes", tc.maxBytes, want, len(got.result))
				}
			}
			if len(pkts) != want {
				t.Errorf("the result holds %d packets, want %d", len(pkts), want)
			}
			for i, p := range pkts {
				if len(p.Data) != 300 {
					t.Errorf("packet %d has %d bytes, want 300", i, len(p.Data))
					break
				}
			}
			if c := capinfosPackets(t, got.result); c != fmt.Sprint(want) {
				t.Errorf("capinfos reads %s packets, want %d", c, want)
			}
			if got.finishes != 1 || got.errText != "" {
				t.Errorf("%d finishes, error %q; want 1 and none", got.finishes, got.errText)
			}
			if got.progress.Packets != uint64(want) || got.progress.Size != uint64(len(got.result)) || got.progress.Bytes != uint64(300*want) {
				t.Errorf("final progress %+v, want %d packets, %d bytes of data, size %d", got.progress, want, 300*want, len(got.result))
			}
			if first := got.progresses[0]; first.State != "running" {
				t.Errorf("first progress report %+v, want state running", first)
			}
			if env.starts.Load() != 1 {
				t.Errorf("%d captures started, want 1", env.starts.Load())
			}
			m := metrics(tr.Runner)
			for k, v := range map[string]string{
				`ringtap_jobs_running`:                          "0",
				`ringtap_jobs_finished_total{state="finished"}`: "1",
				`ringtap_jobs_finished_total{state="failed"}`:   "0",
				`ringtap_job_uploads_pending`:                   "0",
				`ringtap_job_upload_bytes_total`:                fmt.Sprint(len(got.result)),
				`ringtap_job_held_bytes`:                        "0",
			} {
				if m[k] != v {
					t.Errorf("metric %s = %q, want %s", k, m[k], v)
				}
			}
		})
	}
}

// TestCancel: an admin's cancel, seen only through the cancel check and
// the progress answers, stops the capture within 2 s; the partial file is
// uploaded and the run ends canceled, "canceled by an admin".
func TestCancel(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	fc.hideCancel = true
	fc.addJob(env.job(1, time.Minute))
	tr := mustRunner(t, fc, env, Options{})
	waitState(t, fc, 1, "running", 10*time.Second)
	env.send(t, jobPort, 10, 200)
	mustEventually(t, 10*time.Second, "10 packets reported", func() (bool, string) {
		p := fc.get(1).progress
		return p.Packets == 10, fmt.Sprint(p)
	})
	canceled := time.Now()
	fc.setRun(1, func(r *consoleRun) { r.cancel = true })
	got := waitState(t, fc, 1, "canceled", 10*time.Second)
	stoppedIn := got.at("uploading").Sub(canceled)
	endedIn := got.at("canceled").Sub(canceled)
	t.Logf("capture stopped %v after the cancel, run canceled after %v", stoppedIn.Round(time.Millisecond), endedIn.Round(time.Millisecond))
	if stoppedIn > 2*time.Second {
		t.Errorf("the capture stopped %v after the cancel, want within 2s", stoppedIn)
	}
	if got.errText != ReasonCanceled {
		t.Errorf("error %q, want %q", got.errText, ReasonCanceled)
	}
	if n := len(readPackets(t, got.result)); n != 10 {
		t.Errorf("the partial result holds %d packets, want 10", n)
	}
	if got.progress.Packets != 10 || got.finishes != 1 {
		t.Errorf("final progress %+v, %d finishes", got.progress, got.finishes)
	}
	waitGone(t, tr, 1)
	if m := metrics(tr.Runner); m[`ringtap_jobs_finished_total{state="canceled"}`] != "1" {
		t.Errorf("canceled runs metric %q, want 1", m[`ringtap_jobs_finished_total{state="canceled"}`])
	}
}

// TestConsoleAway: the console stores a chunk but the answer is lost,
// then refuses everything (503) for a while; when it is back a HEAD
// answers a stale offset once. The upload resumes from the console's
// offset each time, sends no chunk twice but the one the 409 refused,
// and the end, whose answer is lost too, is stored exactly once.
func TestConsoleAway(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	j := env.job(1, time.Minute)
	j.MaxPackets = 120
	fc.addJob(j)
	const chunk = 16 << 10
	var mu sync.Mutex
	patches := 0
	var awayUntil time.Time
	refused := 0
	fc.loseAnswer = func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		patches++
		if patches == 3 {
			awayUntil = time.Now().Add(1500 * time.Millisecond)
			return true
		}
		return false
	}
	fc.refuse = func(r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Before(awayUntil) {
			refused++
			return http.StatusServiceUnavailable
		}
		if !awayUntil.IsZero() && fc.staleHead == 0 && refused > 0 {
			fc.staleHead, refused = 1, -1000 // once
		}
		return 0
	}
	fc.loseFinishes = 1
	tr := mustRunner(t, fc, env, Options{ChunkSize: chunk})
	waitState(t, fc, 1, "running", 10*time.Second)
	env.send(t, jobPort, 150, 1200)
	got := waitState(t, fc, 1, "finished", 30*time.Second)
	waitGone(t, tr, 1)
	got = fc.get(1)
	if n := len(readPackets(t, got.result)); n != 120 {
		t.Fatalf("the result holds %d packets, want 120", n)
	}
	if c := capinfosPackets(t, got.result); c != "120" {
		t.Errorf("capinfos reads %s packets, want 120", c)
	}
	var want []int64
	for off := int64(0); off < int64(len(got.result)); off += chunk {
		if off == 3*chunk {
			want = append(want, 3*chunk-4096) // the stale HEAD's, refused with 409
		}
		want = append(want, off)
	}
	if diff := cmp.Diff(want, got.patches); diff != "" {
		t.Errorf("PATCH offsets (-want +got):\n%s", diff)
	}
	if got.finishes != 1 {
		t.Errorf("%d finishes stored, want exactly 1", got.finishes)
	}
	n := 0
	fc.mu.Lock()
	for _, r := range fc.requests {
		if r == "POST "+jobapi.Path(jobapi.FinishPath, 1) {
			n++
		}
	}
	fc.mu.Unlock()
	if n < 2 {
		t.Errorf("%d finish requests: the lost answer was not retried", n)
	}
	if mu.Lock(); refused >= 0 {
		t.Errorf("the console was never away after the lost answer (refused %d)", refused)
	}
	mu.Unlock()
}

// TestMaxConcurrent: with max_concurrent 2, four queued runs are claimed
// two at a time; the others stay queued on the console until a run
// stops capturing, and all four finish.
func TestMaxConcurrent(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	for id := int64(1); id <= 4; id++ {
		j := env.job(id, 1500*time.Millisecond)
		j.CreatedAt = time.Now().Add(time.Duration(id) * time.Millisecond)
		fc.addJob(j)
	}
	tr := mustRunner(t, fc, env, Options{Limits: config.Jobs{MaxConcurrent: 2, MaxBytes: 1 << 30, MinFree: storage.Space{Percent: 1}}})
	mustEventually(t, 10*time.Second, "runs 1 and 2 running", func() (bool, string) {
		return fc.get(1).state == "running" && fc.get(2).state == "running", fmt.Sprint(fc.get(1).states(), fc.get(2).states())
	})
	if s3, s4 := fc.get(3).state, fc.get(4).state; s3 != "queued" || s4 != "queued" {
		t.Errorf("runs 3 and 4 are %s and %s while 1 and 2 capture, want queued", s3, s4)
	}
	for id := int64(1); id <= 4; id++ {
		waitState(t, fc, id, "finished", 30*time.Second)
	}
	for id := int64(3); id <= 4; id++ {
		accepted := fc.get(id).at("accepted")
		first := fc.get(1).at("uploading")
		if u2 := fc.get(2).at("uploading"); u2.Before(first) {
			first = u2
		}
		if accepted.Before(first) {
			t.Errorf("run %d accepted at %v, before runs 1 or 2 stopped capturing (%v)", id, accepted, first)
		}
	}
	fc.mu.Lock()
	maxActive := fc.maxActive
	fc.mu.Unlock()
	if maxActive != 2 {
		t.Errorf("at most %d runs were accepted or running at once, want 2", maxActive)
	}
	if n := env.starts.Load(); n != 4 {
		t.Errorf("%d captures, want 4", n)
	}
	if s := tr.Status(); s.MaxConcurrent != 2 {
		t.Errorf("status max_concurrent %d", s.MaxConcurrent)
	}
}

// TestBudgetHeld: a capturing run holds its max_bytes; a second run that
// does not fit beside it is claimed and ends failed at once, before any
// capture of its own, with the sentence; the first still finishes.
func TestBudgetHeld(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	j1 := env.job(1, 3*time.Second)
	j1.MaxBytes = 2 << 20
	fc.addJob(j1)
	tr := mustRunner(t, fc, env, Options{Limits: config.Jobs{MaxConcurrent: 2, MaxBytes: 3 << 20, MinFree: storage.Space{Percent: 1}}})
	waitState(t, fc, 1, "running", 10*time.Second)
	if s := tr.Status(); s.Held != 2<<20 {
		t.Errorf("status held %d while run 1 captures, want %d", s.Held, 2<<20)
	}
	j2 := env.job(2, 3*time.Second)
	j2.MaxBytes = 2 << 20
	fc.addJob(j2)
	got := waitState(t, fc, 2, "failed", 10*time.Second)
	want := "job 2 needs up to 2.0 MiB but the agent's job budget has 1.0 MiB left (jobs.max_bytes 3.0 MiB, 2.0 MiB held): lower max_bytes or raise jobs.max_bytes"
	if got.errText != want {
		t.Errorf("error:\n%s\nwant:\n%s", got.errText, want)
	}
	if diff := cmp.Diff([]string{"queued", "accepted", "failed"}, got.states()); diff != "" {
		t.Errorf("run 2 states (-want +got):\n%s", diff)
	}
	if n := env.starts.Load(); n != 1 {
		t.Errorf("%d captures started, want 1 (run 1's)", n)
	}
	waitState(t, fc, 1, "finished", 20*time.Second)
	waitGone(t, tr, 2)
}

// TestClaimRetry: the console stores the claim but its answers are
// lost; every retry sends the same token, also the next runner's after a
// restart (read from run.json), and the run is accepted once and runs.
func TestClaimRetry(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	fc.addJob(env.job(1, time.Second))
	fc.loseClaims = 1 << 20
	dir := filepath.Join(t.TempDir(), "jobs")
	first := mustRunner(t, fc, env, Options{Dir: dir})
	mustEventually(t, 10*time.Second, "three claims", func() (bool, string) {
		return len(fc.get(1).claims) >= 3, fmt.Sprint(fc.get(1).claims)
	})
	first.stop()
	rec, err := loadRecord(runDir(dir, 1))
	if err != nil {
		t.Fatalf("run.json after the lost claims: %v", err)
	}
	if rec.State != stateClaiming || rec.Claim != fc.get(1).claim {
		t.Fatalf("run.json: state %q claim %q; want claiming with the console's claim %q", rec.State, rec.Claim, fc.get(1).claim)
	}
	fc.mu.Lock()
	fc.loseClaims = 2
	fc.mu.Unlock()
	second := mustRunner(t, fc, env, Options{Dir: dir})
	got := waitState(t, fc, 1, "finished", 20*time.Second)
	waitGone(t, second, 1)
	for i, c := range got.claims {
		if c != rec.Claim {
			t.Errorf("claim %d sent token %s, want %s every time", i, c, rec.Claim)
		}
	}
	if diff := cmp.Diff([]string{"queued", "accepted", "running", "uploading", "finished"}, got.states()); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if n := env.starts.Load(); n != 1 {
		t.Errorf("%d captures, want 1", n)
	}
}

// TestGracefulStop: the agent stopping mid-run stops the capture,
// uploads the file and ends the run failed, "the agent was stopped
// during the run", within the grace; with the console away then, the run
// is left in the jobs directory, and the next start uploads and ends it.
func TestGracefulStop(t *testing.T) {
	t.Run("within the grace", func(t *testing.T) {
		env := mustCaptureEnv(t)
		fc := newFakeConsole(t)
		fc.addJob(env.job(1, time.Minute))
		tr := mustRunner(t, fc, env, Options{})
		waitState(t, fc, 1, "running", 10*time.Second)
		env.send(t, jobPort, 7, 200)
		mustEventually(t, 10*time.Second, "7 packets reported", func() (bool, string) {
			return fc.get(1).progress.Packets == 7, fmt.Sprint(fc.get(1).progress)
		})
		start := time.Now()
		tr.stop()
		t.Logf("Run returned %v after the stop", time.Since(start).Round(time.Millisecond))
		got := fc.get(1)
		if got.state != "failed" || got.errText != ReasonStopped {
			t.Fatalf("run %s %q after the stop, want failed %q", got.state, got.errText, ReasonStopped)
		}
		if n := len(readPackets(t, got.result)); n != 7 {
			t.Errorf("the result holds %d packets, want 7", n)
		}
		if _, err := os.Stat(runDir(tr.dir, 1)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the run's directory after it ended: %v", err)
		}
	})
	t.Run("console away", func(t *testing.T) {
		env := mustCaptureEnv(t)
		fc := newFakeConsole(t)
		fc.addJob(env.job(1, time.Minute))
		dir := filepath.Join(t.TempDir(), "jobs")
		tr := mustRunner(t, fc, env, Options{Dir: dir, StopGrace: time.Second})
		waitState(t, fc, 1, "running", 10*time.Second)
		env.send(t, jobPort, 4, 200)
		mustEventually(t, 10*time.Second, "4 packets reported", func() (bool, string) {
			return fc.get(1).progress.Packets == 4, fmt.Sprint(fc.get(1).progress)
		})
		var away sync.Mutex
		down := true
		fc.refuse = func(*http.Request) int {
			away.Lock()
			defer away.Unlock()
			if down {
				return http.StatusServiceUnavailable
			}
			return 0
		}
		tr.stop()
		rec, err := loadRecord(runDir(dir, 1))
		if err != nil {
			t.Fatalf("run.json after a stop with the console away: %v", err)
		}
		if rec.State != stateUploading || rec.Outcome != outcomeFailed || rec.Reason != ReasonStopped || rec.Progress.Packets != 4 {
			t.Fatalf("run.json %+v, want uploading, failed %q, 4 packets", rec, ReasonStopped)
		}
		away.Lock()
		down = false
		away.Unlock()
		next := mustRunner(t, fc, noCapture{t}, Options{Dir: dir})
		got := waitState(t, fc, 1, "failed", 10*time.Second)
		waitGone(t, next, 1)
		got = fc.get(1)
		if got.errText != ReasonStopped || len(readPackets(t, got.result)) != 4 || got.finishes != 1 {
			t.Errorf("after the next start: error %q, %d bytes, %d finishes", got.errText, len(got.result), got.finishes)
		}
	})
}

// TestConsoleEndsRun: a run the console ended (here: failed for
// silence) answers 410 to progress: the capture stops, the file is still
// uploaded, no end is sent, and the run is dropped. A run another claim
// holds (409) stops and is dropped without an upload.
func TestConsoleEndsRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(r *consoleRun)
		upload bool
	}{
		{"failed for silence", func(r *consoleRun) {
			r.state, r.errText = "failed", "the device stopped reporting for 2m0s"
			r.transitions = append(r.transitions, transition{"failed", time.Now()})
		}, true},
		{"claimed by another attempt", func(r *consoleRun) { r.claim = newClaim() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := mustCaptureEnv(t)
			fc := newFakeConsole(t)
			fc.addJob(env.job(1, time.Minute))
			tr := mustRunner(t, fc, env, Options{})
			waitState(t, fc, 1, "running", 10*time.Second)
			env.send(t, jobPort, 3, 200)
			mustEventually(t, 10*time.Second, "3 packets reported", func() (bool, string) {
				return fc.get(1).progress.Packets == 3, fmt.Sprint(fc.get(1).progress)
			})
			fc.setRun(1, tc.end)
			waitGone(t, tr, 1)
			got := fc.get(1)
			switch n := len(got.result); {
			case tc.upload && (n == 0 || len(readPackets(t, got.result)) != 3):
				t.Errorf("the result holds %d bytes, want 3 packets: the upload of an ended run was not offered", n)
			case !tc.upload && (n != 0 || len(got.patches) != 0):
				t.Errorf("%d bytes uploaded in %d patches for a run another claim holds", n, len(got.patches))
			}
			if got.finishes != 0 {
				t.Errorf("%d finishes of a run the console ended", got.finishes)
			}
			if m := metrics(tr.Runner); m["ringtap_jobs_dropped_total"] != "1" || m["ringtap_jobs_running"] != "0" {
				t.Errorf("metrics dropped %q running %q, want 1 and 0", m["ringtap_jobs_dropped_total"], m["ringtap_jobs_running"])
			}
		})
	}
}

// TestLive: while the console wants it, the run's packets are pushed as
// a pcapng stream (section header, interfaces, then the packets); the
// push ends when nobody wants it for LiveIdle, and the capture goes on.
func TestLive(t *testing.T) {
	env := mustCaptureEnv(t)
	fc := newFakeConsole(t)
	fc.addJob(env.job(1, time.Minute))
	tr := mustRunner(t, fc, env, Options{LiveIdle: 500 * time.Millisecond})
	waitState(t, fc, 1, "running", 10*time.Second)
	env.send(t, jobPort, 3, 200) // before anyone watches: in the file only
	fc.setRun(1, func(r *consoleRun) { r.liveWanted = true })
	mustEventually(t, 5*time.Second, "a live push", func() (bool, string) {
		return len(fc.get(1).live) == 1, fmt.Sprint(len(fc.get(1).live))
	})
	push := fc.get(1).live[0]
	mustEventually(t, 5*time.Second, "the stream's header", func() (bool, string) {
		_, err := pcapio.NewReader(bytes.NewReader(push.bytes()))
		return err == nil, fmt.Sprint(err)
	})
	env.send(t, jobPort, 20, 200)
	mustEventually(t, 5*time.Second, "20 packets live", func() (bool, string) {
		n, _ := livePackets(push.bytes())
		return n == 20, fmt.Sprint(n)
	})
	if !tr.Status().Runs[0].Live {
		t.Errorf("status does not say the run is live")
	}
	fc.setRun(1, func(r *consoleRun) { r.liveWanted = false })
	mustEventually(t, 5*time.Second, "the push ended", func() (bool, string) { return push.done(), "" })
	n, ifaces := livePackets(push.bytes())
	if n != 20 || len(ifaces) != 1 || ifaces[0].Name != env.pair.B.Link {
		t.Errorf("the whole push: %d packets of %+v, want 20 of %s", n, ifaces, env.pair.B.Link)
	}
	if s := fc.get(1).state; s != "running" {
		t.Errorf("run %s after the push ended, want running", s)
	}
	fc.setRun(1, func(r *consoleRun) { r.cancel = true })
	got := waitState(t, fc, 1, "canceled", 10*time.Second)
	if n := len(readPackets(t, got.result)); n != 23 {
		t.Errorf("the result holds %d packets, want 23: the live stream changed the file", n)
	}
	if l := len(got.live); l != 1 {
		t.Errorf("%d pushes, want 1", l)
	}
}

// livePackets counts the packets of a pcapng stream read so far.
func livePackets(b []byte) (int, []pcapio.Interface) {
	r, err := pcapio.NewReader(bytes.NewReader(b))
	if err != nil {
		return 0, nil
	}
	n := 0
	for {
		var p pcapio.Packet
		if err := r.Next(&p); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return -1, nil
			}
			return n, r.Interfaces()
		}
		n++
	}
}
