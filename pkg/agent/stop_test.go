package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// mustSignal sends s to this process. The signal handlers of Main are
// installed before the tree starts, so a test that waited for a component
// to run may send it.
func mustSignal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), s); err != nil {
		t.Fatal(err)
	}
}

type mainResult struct {
	clean bool
	err   error
}

func mustStartMain(t *testing.T, m *Main) <-chan mainResult {
	t.Helper()
	done := make(chan mainResult, 1)
	go func() {
		clean, err := m.Run(context.Background())
		done <- mainResult{clean, err}
	}()
	return done
}

func mustResult(t *testing.T, done <-chan mainResult, within time.Duration) mainResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(within):
		t.Fatalf("Main.Run did not return within %s", within)
		return mainResult{}
	}
}

// TestMainTwoStep: the first SIGTERM stops gracefully (each component's
// context is cancelled and waited for), the second returns at once, not
// clean.
func TestMainTwoStep(t *testing.T) {
	log, logs := mustLogger(t)
	tree := NewTree(TreeOptions{Logger: log, StopTimeout: time.Minute})
	running := make(chan struct{})
	var politeStopped atomic.Bool
	tree.Add("polite", ComponentFunc(func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		politeStopped.Store(true)
		return nil
	}))
	release := make(chan struct{})
	tree.Add("stubborn", ComponentFunc(func(context.Context) error { <-release; return nil }))
	m := NewMain(tree, MainOptions{Logger: log, ShutdownHook: []string{"true"}})
	done := mustStartMain(t, m)
	<-running

	mustSignal(t, syscall.SIGTERM)
	mustEventually(t, "the first signal to cancel the components", politeStopped.Load)
	select {
	case r := <-done:
		t.Fatalf("Run returned after one signal with stubborn still running: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}

	start := time.Now()
	mustSignal(t, syscall.SIGTERM)
	r := mustResult(t, done, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("second signal: Run returned after %s", took)
	}
	if r.clean || !errors.Is(r.err, ErrHardStop) {
		t.Errorf("after a second signal: clean=%v err=%v, want false and ErrHardStop", r.clean, r.err)
	}
	for _, s := range []string{"signal received: stopping gracefully", "second signal received: stopping at once"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q", s)
		}
	}
	if strings.Contains(logs.String(), "running shutdown hook") {
		t.Error("the shutdown hook ran after a hard stop")
	}
	// Let the stubborn component end, so that no goroutine outlives the
	// test.
	close(release)
	mustEventually(t, "the tree to end", func() bool { ok, reason := tree.Ready(); return !ok && reason == "supervisor stopped" })
	m.Stop()
	m.HardStop()
}

// TestMainShutdownHook: after the tree stopped the hook runs with
// RINGTAP_SHUTDOWN_CLEAN, bounded by its timeout; its failure makes the
// stop not clean.
func TestMainShutdownHook(t *testing.T) {
	for _, p := range []string{"sh", "sleep"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("no %s: %v", p, err)
		}
	}
	stopErr := errors.New("flush web.pcapng: disk full")
	tests := []struct {
		name      string
		hook      []string
		stopErr   error // returned by the component when stopped
		signal    syscall.Signal
		wantClean bool
		wantErr   string
		wantLog   []string
		maxTook   time.Duration
	}{
		{name: "clean, by Stop", hook: []string{"sh", "-c", "echo clean=$RINGTAP_SHUTDOWN_CLEAN; echo to-stderr >&2"},
			wantClean: true, wantLog: []string{`line="clean=1"`, "line=to-stderr", "shutdown hook done"}},
		{name: "clean, by SIGINT", hook: []string{"sh", "-c", "echo clean=$RINGTAP_SHUTDOWN_CLEAN"}, signal: syscall.SIGINT,
			wantClean: true, wantLog: []string{`line="clean=1"`}},
		{name: "tree not clean", hook: []string{"sh", "-c", "echo clean=$RINGTAP_SHUTDOWN_CLEAN"}, stopErr: stopErr,
			wantErr: "stop c: flush web.pcapng: disk full", wantLog: []string{`line="clean=0"`}},
		{name: "hook fails", hook: []string{"sh", "-c", "echo oops; exit 3"},
			wantErr: "shutdown hook sh: exit status 3", wantLog: []string{"line=oops"}},
		{name: "hook times out", hook: []string{"sleep", "10"},
			wantErr: "shutdown hook sleep: killed after the 200ms timeout", maxTook: 5 * time.Second},
		{name: "hook's child times out", hook: []string{"sh", "-c", "sleep 10; echo never"},
			wantErr: "killed after the 200ms timeout", maxTook: 5 * time.Second},
		{name: "no hook", wantClean: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := mustLogger(t)
			tree := NewTree(TreeOptions{Logger: log, StopTimeout: 5 * time.Second})
			running := make(chan struct{})
			tree.Add("c", ComponentFunc(func(ctx context.Context) error {
				close(running)
				<-ctx.Done()
				return tt.stopErr
			}))
			m := NewMain(tree, MainOptions{Logger: log, ShutdownHook: tt.hook, ShutdownHookTimeout: 200 * time.Millisecond})
			done := mustStartMain(t, m)
			<-running
			start := time.Now()
			if tt.signal != 0 {
				mustSignal(t, tt.signal)
			} else {
				m.Stop()
				m.Stop()
			}
			r := mustResult(t, done, 15*time.Second)
			if tt.maxTook > 0 && time.Since(start) > tt.maxTook {
				t.Errorf("stop took %s, want at most %s", time.Since(start), tt.maxTook)
			}
			if r.clean != tt.wantClean {
				t.Errorf("clean = %v, want %v (err %v)", r.clean, tt.wantClean, r.err)
			}
			switch {
			case tt.wantErr == "" && r.err != nil:
				t.Errorf("err = %v, want nil", r.err)
			case tt.wantErr != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", r.err, tt.wantErr)
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log lacks %q:\n%s", s, logs.String())
				}
			}
			if strings.Contains(logs.String(), "line=never") {
				t.Error("the hook's child outlived the timeout")
			}
			m.Stop()
			m.HardStop()
			if _, err := m.Run(context.Background()); err == nil {
				t.Error("second Run: nil error")
			}
		})
	}
}

// TestMainReload: SIGHUP calls Reload, never two at once; its error is
// logged; a burst while one runs makes one more call, not one per signal.
func TestMainReload(t *testing.T) {
	log, logs := mustLogger(t)
	tree := NewTree(TreeOptions{Logger: log})
	running := make(chan struct{})
	tree.Add("c", ComponentFunc(func(ctx context.Context) error { close(running); <-ctx.Done(); return nil }))
	var calls, inFlight, maxInFlight atomic.Int64
	entered := make(chan struct{}, 16)
	m := NewMain(tree, MainOptions{Logger: log, Reload: func(ctx context.Context) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > maxInFlight.Load() {
			maxInFlight.Store(n)
		}
		c := calls.Add(1)
		entered <- struct{}{}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		if c == 1 {
			return errors.New("parse /etc/ringtap/agent.yaml: line 3: bad filter")
		}
		return nil
	}})
	done := mustStartMain(t, m)
	<-running

	mustSignal(t, syscall.SIGHUP)
	<-entered
	for range 5 {
		mustSignal(t, syscall.SIGHUP)
	}
	mustEventually(t, "the second reload", func() bool { return calls.Load() >= 2 })
	time.Sleep(250 * time.Millisecond) // room for a wrong third call
	if n := calls.Load(); n != 2 {
		t.Errorf("Reload called %d times, want 2 (one, then one for the burst)", n)
	}
	if n := maxInFlight.Load(); n != 1 {
		t.Errorf("%d Reload calls ran at once, want 1", n)
	}
	if !strings.Contains(logs.String(), "bad filter") {
		t.Errorf("Reload's error not logged:\n%s", logs.String())
	}
	m.Stop()
	if r := mustResult(t, done, 10*time.Second); !r.clean || r.err != nil {
		t.Errorf("after Stop: clean=%v err=%v", r.clean, r.err)
	}
}
