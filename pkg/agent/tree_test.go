package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
)

// ticker counts its ticks and how often it was started.
type ticker struct {
	starts, ticks atomic.Int64
}

func (c *ticker) Run(ctx context.Context) error {
	c.starts.Add(1)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.ticks.Add(1)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, 20 * time.Millisecond},
		{2, 40 * time.Millisecond},
		{3, 80 * time.Millisecond},
		{4, 160 * time.Millisecond},
		{5, 200 * time.Millisecond},
		{60, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := b.Delay(tt.failures); got != tt.want {
			t.Errorf("delay(%d) = %s, want %s", tt.failures, got, tt.want)
		}
		b.Jitter = 0.2
		for range 100 {
			if got := b.Delay(tt.failures); got > tt.want || got < tt.want*8/10 {
				t.Errorf("delay(%d) with jitter 0.2 = %s, want in [%s, %s]", tt.failures, got, tt.want*8/10, tt.want)
			}
		}
		b.Jitter = 0
	}
}

// TestTreeBackoff: a failing component is restarted with growing waits,
// each within its jitter bounds, while the other runs undisturbed and the
// tree reports not ready during the waits.
func TestTreeBackoff(t *testing.T) {
	const (
		base   = 20 * time.Millisecond
		maxB   = 200 * time.Millisecond
		jitter = 0.2
		runs   = 7
		// slack is how late a timer may fire on a loaded machine with -race.
		slack = 150 * time.Millisecond
	)
	log, _ := mustLogger(t)
	tree := NewTree(TreeOptions{Logger: log, BackoffBase: base, BackoffMax: maxB, BackoffJitter: jitter, StableAfter: time.Minute})

	var mu sync.Mutex
	var starts []time.Time
	var ticksAtStart []int64
	tick := &ticker{}
	tree.Add("ticker", tick)
	tree.Add("flaky", ComponentFunc(func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		starts = append(starts, time.Now())
		ticksAtStart = append(ticksAtStart, tick.ticks.Load())
		if len(starts) >= runs {
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			return nil
		}
		return errors.New("link gone")
	}))

	stop := runTree(t, tree)

	// Watch readiness while it runs.
	var sawNotReady atomic.Bool
	var badReason atomic.Value
	watchDone := make(chan struct{})
	watchStop := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-watchStop:
				return
			default:
			}
			if ok, reason := tree.Ready(); !ok && strings.Contains(reason, "component flaky in restart backoff") {
				sawNotReady.Store(true)
				if strings.Contains(reason, "ticker") {
					badReason.Store(reason)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	mustEventually(t, "the 7th run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= runs
	})
	mustEventually(t, "ready after the last restart", func() bool { ok, _ := tree.Ready(); return ok })
	close(watchStop)
	<-watchDone

	if !sawNotReady.Load() {
		t.Error("Ready() never reported flaky in backoff")
	}
	if r := badReason.Load(); r != nil {
		t.Errorf("Ready() reason names the healthy component: %q", r)
	}

	mu.Lock()
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		want := Backoff{Base: base, Max: maxB}.Delay(i)
		lo := time.Duration(float64(want) * (1 - jitter))
		if gap < lo || gap > want+slack {
			t.Errorf("wait before run %d = %s, want in [%s, %s+%s]", i+1, gap, lo, want, slack)
		}
		if ticksAtStart[i] <= ticksAtStart[i-1] {
			t.Errorf("ticker did not tick between runs %d and %d of flaky", i, i+1)
		}
	}
	mu.Unlock()

	want := []ComponentStatus{
		{Name: "ticker", State: StateRunning},
		{Name: "flaky", State: StateRunning, Restarts: runs - 1, LastError: "link gone"},
	}
	if diff := cmp.Diff(want, tree.Components(), cmpopts.IgnoreFields(ComponentStatus{}, "LastErrorAt")); diff != "" {
		t.Errorf("Components() (-want +got):\n%s", diff)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := tick.starts.Load(); n != 1 {
		t.Errorf("ticker started %d times, want 1", n)
	}
	for _, c := range tree.Components() {
		if c.State != StateStopped {
			t.Errorf("after Run: %s is %s, want stopped", c.Name, c.State)
		}
	}
}

// TestTreeFailures: each kind of failure is logged, counted and
// restarted; the component then runs.
func TestTreeFailures(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(ctx context.Context) error
		wantErr string
		wantLog []string
	}{
		{
			name:    "error",
			fail:    func(context.Context) error { return errors.New("attach xdp to eth0: busy") },
			wantErr: "attach xdp to eth0: busy",
			wantLog: []string{"component failed", "attach xdp to eth0: busy"},
		},
		{
			name:    "nil before ctx done",
			fail:    func(context.Context) error { return nil },
			wantErr: "returned before its context was done",
			wantLog: []string{"component failed", "returned before its context was done"},
		},
		{
			name:    "panic",
			fail:    func(context.Context) error { panic("boom") },
			wantErr: "panic: boom",
			// The stack is the panic's: it names this file.
			wantLog: []string{"component panicked", "panic=boom", "stack=", "tree_test.go", "component failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := mustLogger(t)
			tree := NewTree(TreeOptions{Logger: log, BackoffBase: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond})
			var runs atomic.Int64
			tree.Add("c", ComponentFunc(func(ctx context.Context) error {
				if runs.Add(1) == 1 {
					return tt.fail(ctx)
				}
				<-ctx.Done()
				return nil
			}))
			stop := runTree(t, tree)
			mustEventually(t, "the restart", func() bool { return runs.Load() == 2 })
			got := componentStatus(tree, "c")
			want := ComponentStatus{Name: "c", State: StateRunning, Restarts: 1, LastError: tt.wantErr}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(ComponentStatus{}, "LastErrorAt")); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if got.LastErrorAt.IsZero() {
				t.Error("LastErrorAt not set")
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log lacks %q:\n%s", s, logs.String())
				}
			}
		})
	}
}

// TestTreeStop: Run returns once every component returned, reporting those
// that did not stop in time or failed to stop.
func TestTreeStop(t *testing.T) {
	release := make(chan struct{})
	tests := []struct {
		name       string
		c          ComponentFunc
		wantErr    []string // substrings; none: nil error
		wantIs     error
		wantLonger bool // Run waits out StopTimeout
	}{
		{name: "clean", c: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{
			name:       "ignores ctx",
			c:          func(context.Context) error { <-release; return nil },
			wantErr:    []string{"components stubborn did not stop in time"},
			wantIs:     ErrStopTimeout,
			wantLonger: true,
		},
		{
			name:    "error while stopping",
			c:       func(ctx context.Context) error { <-ctx.Done(); return errors.New("flush web.pcapng: disk full") },
			wantErr: []string{"stop stubborn: flush web.pcapng: disk full"},
		},
	}
	const stopTimeout = 100 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			log, _ := mustLogger(t)
			tree := NewTree(TreeOptions{Logger: log, StopTimeout: stopTimeout})
			tree.Add("good", &ticker{})
			tree.Add("stubborn", tt.c)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tree.Run(ctx) }()
			mustEventually(t, "both running", func() bool {
				ok, _ := tree.Ready()
				return ok && componentStatus(tree, "stubborn").State == StateRunning && componentStatus(tree, "good").State == StateRunning
			})
			start := time.Now()
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			took := time.Since(start)
			if tt.wantLonger && took < stopTimeout {
				t.Errorf("Run returned after %s, before the %s stop timeout", took, stopTimeout)
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
			if len(tt.wantErr) > 0 && err == nil {
				t.Errorf("Run: nil, want an error")
			}
			for _, s := range tt.wantErr {
				if err != nil && !strings.Contains(err.Error(), s) {
					t.Errorf("Run: %q, want it to contain %q", err, s)
				}
			}
			if err != nil && strings.Contains(err.Error(), "good") {
				t.Errorf("Run: %q names the component that stopped", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run: %v, want errors.Is %v", err, tt.wantIs)
			}
			if ok, reason := tree.Ready(); ok || reason != "supervisor stopped" {
				t.Errorf("Ready() after Run = %v, %q", ok, reason)
			}
			if tt.wantLonger {
				close(release)
				mustEventually(t, "the stubborn component to end", func() bool {
					return componentStatus(tree, "stubborn").State == StateStopped
				})
			}
			if err := tree.Run(context.Background()); err == nil {
				t.Error("second Run: nil error")
			}
		})
	}
}

func TestTreeAddDuplicatePanics(t *testing.T) {
	tree := NewTree(TreeOptions{})
	tree.Add("a", &ticker{})
	defer func() {
		if recover() == nil {
			t.Error("Add of a duplicate name did not panic")
		}
	}()
	tree.Add("a", &ticker{})
}
