package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Component is one long-running piece of the agent. Run returns when ctx
// is done (its return value is then only logged) and owns every goroutine
// it starts. Returning earlier, with or without an error, or panicking, is a
// failure: the Tree runs it again after a backoff.
type Component interface {
	Run(ctx context.Context) error
}

// ComponentFunc adapts a function to Component.
type ComponentFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f ComponentFunc) Run(ctx context.Context) error { return f(ctx) }

// Component states, as in ComponentStatus.State.
const (
	StateRunning = "running" // Run is executing
	StateBackoff = "backoff" // Run failed; waiting to run it again
	StateStopped = "stopped" // not started yet, or stopped with the tree
)

// ComponentStatus is one component's state as the supervisor sees it.
type ComponentStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Restarts counts the times Run was called again after a failure.
	Restarts uint64 `json:"restarts"`
	// LastError and LastErrorAt describe the last failure (or the error
	// Run returned while stopping); empty when there was none.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RetryAt is when a component in backoff runs again.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// errReturnedEarly is the failure of a Run that returned nil while its
// context was still live.
var errReturnedEarly = errors.New("returned before its context was done")

// PanicError is the failure of a Run that panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Backoff is the exponential backoff of a restarted component (the
// tree's, and the pcap manager's for a capture's exporter): Base·2^(n-1)
// for the n-th consecutive failure, capped at Max, less a random part of
// up to Jitter of it (so a delay never exceeds Max, and consecutive
// delays below the cap never overlap for Jitter < 0.5).
type Backoff struct {
	Base, Max time.Duration
	Jitter    float64
}

// Delay is the wait before the restart after the n-th consecutive
// failure.
func (b Backoff) Delay(failures int) time.Duration {
	d := b.Base
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}

// supervised wraps a Component as the suture.Service the Tree runs. It
// does its own restarts: Serve returns only when ctx is done, so the
// supervisor never sees a failure of it (see Tree).
type supervised struct {
	name    string
	c       Component
	log     *slog.Logger
	backoff Backoff
	stable  time.Duration

	mu        sync.Mutex
	state     string
	restarts  uint64
	lastErr   string
	lastErrAt time.Time
	retryAt   time.Time
	stopErr   error // a non-context error Run returned while stopping
	served    bool  // Serve was entered
	exited    bool  // Serve returned
}

// String names the service in suture's events.
func (s *supervised) String() string { return s.name }

func (s *supervised) status() ComponentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ComponentStatus{Name: s.name, State: s.state, Restarts: s.restarts,
		LastError: s.lastErr, LastErrorAt: s.lastErrAt, RetryAt: s.retryAt}
}

func (s *supervised) set(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// Serve runs the component until ctx is done, restarting it after each
// failure.
func (s *supervised) Serve(ctx context.Context) error {
	s.set(func() { s.served = true })
	defer s.set(func() { s.state, s.retryAt, s.exited = StateStopped, time.Time{}, true })
	failures := 0
	for {
		started := time.Now()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("component returned an error while stopping", "component", s.name, "err", err)
				now := time.Now()
				s.set(func() { s.stopErr, s.lastErr, s.lastErrAt = err, err.Error(), now })
			}
			return ctx.Err()
		}
		now := time.Now()
		if now.Sub(started) >= s.stable {
			failures = 0
		}
		failures++
		d := s.backoff.Delay(failures)
		s.set(func() {
			s.state, s.lastErr, s.lastErrAt, s.retryAt = StateBackoff, err.Error(), now, now.Add(d)
		})
		// A panic was logged with its stack in runOnce; this line says
		// what happens next.
		s.log.Error("component failed", "component", s.name, "err", err,
			"failures", failures, "backoff", d, "ran_for", now.Sub(started).Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		s.set(func() { s.restarts++ })
		s.log.Info("component restarting", "component", s.name, "restarts", s.status().Restarts)
	}
}

// runOnce calls Run once, turning a panic into a *PanicError (logged here
// with its stack, which is still that of the panic) and an early nil
// return into errReturnedEarly.
func (s *supervised) runOnce(ctx context.Context) (err error) {
	s.set(func() { s.state, s.retryAt = StateRunning, time.Time{} })
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			s.log.Error("component panicked", "component", s.name, "panic", fmt.Sprint(v), "stack", string(stack))
			err = &PanicError{Value: v, Stack: stack}
		}
	}()
	err = s.c.Run(ctx)
	if err == nil && ctx.Err() == nil {
		err = errReturnedEarly
	}
	return err
}
