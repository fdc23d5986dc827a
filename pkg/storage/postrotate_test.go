package storage

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// mustScript writes an executable shell script.
func mustScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "post.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPostrotate(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	for _, tc := range []struct {
		name     string
		script   string
		timeout  time.Duration
		failures bool
	}{
		{"success", `echo "$1" >> ` + log, time.Minute, false},
		{"failure", `echo "$1" >> ` + log + `; echo broken >&2; exit 3`, time.Minute, true},
		// The shell and its child die at the timeout: the whole
		// process group is killed.
		{"timeout", `echo "$1" >> ` + log + `; sleep 30 & wait`, 100 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(log)
			dir := t.TempDir()
			r := mustRecorder(t, Options{Dir: dir, FileSize: 20_000, Postrotate: mustScript(t, tc.script), PostrotateTimeout: tc.timeout, now: newClock().Now})
			start := time.Now()
			mustWritePackets(t, r, 0, 200, t0.UnixNano(), time.Millisecond)
			if took := time.Since(start); took > time.Second {
				t.Errorf("writing took %v: postrotate blocked the writer", took)
			}
			mustClose(t, r)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Close took %v", took)
			}
			files := dataFiles(t, dir)
			b, _ := os.ReadFile(log)
			ran := strings.Fields(string(b))
			slices.Sort(ran)
			if diff := cmp.Diff(files, ran); diff != "" {
				t.Errorf("postrotate ran for (-files +ran):\n%s", diff)
			}
			s := r.Stats()
			if want := uint64(0); tc.failures {
				if s.PostrotateFailures != uint64(len(files)) {
					t.Errorf("%d postrotate failures, want %d", s.PostrotateFailures, len(files))
				}
			} else if s.PostrotateFailures != want {
				t.Errorf("%d postrotate failures, want 0", s.PostrotateFailures)
			}
			if s.PacketsWritten != 200 {
				t.Errorf("postrotate disturbed the capture: %+v", s)
			}
		})
	}
}
