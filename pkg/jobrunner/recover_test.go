package jobrunner

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/jobapi"
)

// mustRunDir writes run id's directory as an agent would have left it:
// rec as run.json and data (nil: none) as capture.pcapng.
func mustRunDir(t *testing.T, jobsDir string, rec record, data []byte) string {
	t.Helper()
	d := runDir(jobsDir, rec.ID)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := rec.save(d); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		if err := os.WriteFile(filepath.Join(d, CaptureFile), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRestartRecovery: runs an agent left in its jobs directory are
// carried on by the next runner, before and without any offer: a run
// that was capturing has its file cut after its last whole block,
// uploaded, and ends failed with the reason; one that was uploading
// resumes from the console's offset and ends as decided; one that was
// finishing only sends its end. Each directory is removed once the
// console confirmed, and nothing is captured.
func TestRestartRecovery(t *testing.T) {
	whole := mustPcapng(t, 5, 300)
	torn := append(append([]byte(nil), whole...), mustPcapng(t, 1, 300)[len(mustPcapng(t, 0, 300)):][:40]...)
	done := mustPcapng(t, 12, 700)
	claim := newClaim()
	spec := jobapi.AgentJob{ID: 1, Interfaces: []string{"veth0"}, Duration: jobapi.Duration(time.Minute), MaxBytes: 1 << 20, Destination: "console"}
	for _, tc := range []struct {
		name      string
		rec       record
		file      []byte
		held      int // bytes of the file the console holds already
		consoleAt string
		// want
		states  []string
		errText string
		result  []byte
		packets int
	}{
		{
			name: "capturing, torn last block",
			rec:  record{State: stateCapturing, StartedAt: time.Now().Add(-time.Minute), PID: 1 << 22},
			file: torn, consoleAt: "running",
			states: []string{"running", "uploading", "failed"}, errText: ReasonRestarted, result: whole, packets: 5,
		},
		{
			name: "capturing, whole",
			rec:  record{State: stateCapturing, StartedAt: time.Now().Add(-time.Minute), PID: 1 << 22},
			file: whole, consoleAt: "accepted",
			states: []string{"accepted", "uploading", "failed"}, errText: ReasonRestarted, result: whole, packets: 5,
		},
		{
			name: "capturing, no whole header",
			rec:  record{State: stateCapturing, StartedAt: time.Now(), PID: 1 << 22},
			file: whole[:20], consoleAt: "running",
			states: []string{"running", "failed"}, errText: ReasonRestartedEmpty,
		},
		{
			name: "uploading, half held",
			rec: record{State: stateUploading, Outcome: outcomeFinished, HasFile: true, Size: int64(len(done)), SHA256: sha(done),
				Progress: jobapi.Progress{Packets: 12, Bytes: 12 * 700, Size: uint64(len(done))}},
			file: done, held: len(done) / 2, consoleAt: "uploading",
			states: []string{"uploading", "finished"}, result: done, packets: 12,
		},
		{
			name: "uploading canceled, nothing held",
			rec: record{State: stateUploading, Outcome: outcomeCanceled, Reason: ReasonCanceled, HasFile: true, Size: int64(len(done)), SHA256: sha(done),
				Progress: jobapi.Progress{Packets: 12, Bytes: 12 * 700, Size: uint64(len(done))}},
			file: done, consoleAt: "running",
			states: []string{"running", "uploading", "canceled"}, errText: ReasonCanceled, result: done, packets: 12,
		},
		{
			name: "finishing",
			rec: record{State: stateFinishing, Outcome: outcomeFailed, Reason: ReasonStopped, HasFile: true, Uploaded: true, Size: int64(len(done)), SHA256: sha(done),
				Progress: jobapi.Progress{Packets: 12, Size: uint64(len(done))}},
			file: done, held: -1, consoleAt: "uploading",
			states: []string{"uploading", "failed"}, errText: ReasonStopped, result: done, packets: 12,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeConsole(t)
			fc.addJob(spec)
			fc.setRun(1, func(r *consoleRun) {
				r.claim, r.state, r.transitions = claim, tc.consoleAt, []transition{{tc.consoleAt, time.Now()}}
				switch {
				case tc.held < 0:
					r.result = tc.file
				case tc.held > 0:
					r.part = append([]byte(nil), tc.file[:tc.held]...)
				}
			})
			jobsDir := filepath.Join(t.TempDir(), "jobs")
			rec := tc.rec
			rec.ID, rec.Claim, rec.Job = 1, claim, spec
			d := mustRunDir(t, jobsDir, rec, tc.file)
			tr := mustRunner(t, fc, noCapture{t}, Options{Dir: jobsDir})
			mustEventually(t, 10*time.Second, "the run's directory removed", func() (bool, string) {
				_, err := os.Stat(d)
				return errors.Is(err, fs.ErrNotExist), fmt.Sprint(fc.get(1).states())
			})
			got := fc.get(1)
			if diff := cmp.Diff(tc.states, got.states()); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			if got.errText != tc.errText {
				t.Errorf("error %q, want %q", got.errText, tc.errText)
			}
			if got.finishes != 1 {
				t.Errorf("%d finishes, want 1", got.finishes)
			}
			if !bytes.Equal(got.result, tc.result) {
				t.Fatalf("console holds %d bytes, want the %d of the file cut after its last whole block", len(got.result), len(tc.result))
			}
			if tc.result != nil {
				if n := len(readPackets(t, got.result)); n != tc.packets {
					t.Errorf("uploaded file holds %d packets, want %d", n, tc.packets)
				}
				if got := capinfosPackets(t, got.result); got != fmt.Sprint(tc.packets) {
					t.Errorf("capinfos reads %s packets, want %d", got, tc.packets)
				}
				if got.progress.Packets != uint64(tc.packets) || got.progress.Size != uint64(len(tc.result)) {
					t.Errorf("final progress %+v, want %d packets in %d bytes", got.progress, tc.packets, len(tc.result))
				}
			}
			if tc.held > 0 && len(got.patches) > 0 && got.patches[0] != int64(tc.held) {
				t.Errorf("the upload resumed at %d, want the console's offset %d (patches %v)", got.patches[0], tc.held, got.patches)
			}
			if len(got.claims) != 0 {
				t.Errorf("claims %v: a run carried on was claimed again", got.claims)
			}
			if s := tr.Status(); len(s.Runs) != 0 {
				t.Errorf("status after the end: %+v", s.Runs)
			}
		})
	}
}

// TestUnreadableRunLeftAlone: a run directory whose run.json cannot be
// read is left as it is and reported; one without run.json (never
// claimed) is removed.
func TestUnreadableRunLeftAlone(t *testing.T) {
	fc := newFakeConsole(t)
	jobsDir := filepath.Join(t.TempDir(), "jobs")
	bad := filepath.Join(jobsDir, "7")
	empty := filepath.Join(jobsDir, "8")
	for _, d := range []string{bad, empty} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bad, RecordFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := mustRunner(t, fc, noCapture{t}, Options{Dir: jobsDir})
	mustEventually(t, 5*time.Second, "the unclaimed directory removed", func() (bool, string) {
		_, err := os.Stat(empty)
		return errors.Is(err, fs.ErrNotExist), fmt.Sprint(err)
	})
	if _, err := os.Stat(filepath.Join(bad, RecordFile)); err != nil {
		t.Errorf("the unreadable run's record: %v, want it left", err)
	}
	if diff := cmp.Diff([]string{bad}, tr.Status().Unreadable); diff != "" {
		t.Errorf("status unreadable (-want +got):\n%s", diff)
	}
}

func TestTruncateCapture(t *testing.T) {
	whole := mustPcapng(t, 3, 100)
	for cut := 0; cut <= 60; cut += 7 {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			next := mustPcapng(t, 4, 100)
			data := append([]byte(nil), next[:len(whole)+cut]...)
			path := filepath.Join(t.TempDir(), CaptureFile)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			prog, size, cutBytes, err := truncateCapture(path)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(whole)) || cutBytes != int64(cut) || prog.Packets != 3 || prog.Bytes != 300 {
				t.Errorf("truncateCapture = %+v, size %d, cut %d; want 3 packets, size %d, cut %d", prog, size, cutBytes, len(whole), cut)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(readPackets(t, got)) != 3 {
				t.Errorf("the cut file does not hold 3 whole packets")
			}
		})
	}
}
