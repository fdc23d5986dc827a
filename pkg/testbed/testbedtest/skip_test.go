package testbedtest

import (
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordingTB records how SkipOrFail ends a test; like testing.T it stops
// the goroutine at Skip and Fatalf.
type recordingTB struct {
	testing.TB
	calls []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) {
	r.calls = append(r.calls, "skip")
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.calls = append(r.calls, "fatal")
	runtime.Goexit()
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		ci   string
		want []string
	}{
		{"", []string{"skip"}},
		{"false", []string{"skip"}},
		{"true", []string{"fatal"}},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recordingTB{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				SkipOrFail(r, "no %s", "privileges")
			}()
			<-done
			if diff := cmp.Diff(tc.want, r.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}
