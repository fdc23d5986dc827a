package signals

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// TwoStep returns a context cancelled by the first SIGINT/SIGTERM. A second
// signal calls hard (typically os.Exit). The returned stop function releases
// the signal handlers; it is safe to call more than once.
func TwoStep(parent context.Context, hard func(os.Signal)) (context.Context, context.CancelFunc) {
	return TwoStepWith(parent, Handlers{Hard: hard})
}

// Handlers say what TwoStepWith does on each signal. Each is called from
// the one signal goroutine, so they never run concurrently with each other;
// they should return quickly (hand long work to another goroutine).
type Handlers struct {
	// Stop, when set, is called on the first SIGINT or SIGTERM, after
	// the context was cancelled (to log the signal, say).
	Stop func(os.Signal)
	// Hard is called on the second SIGINT or SIGTERM. Nil ignores it.
	Hard func(os.Signal)
	// Hangup, when set, makes SIGHUP caught: it is called on each SIGHUP
	// until the first SIGINT/SIGTERM; later ones are caught and ignored
	// (never the default action, which would kill the process). When nil,
	// SIGHUP is left alone.
	Hangup func()
}

// TwoStepWith is TwoStep with a handler for each signal: the returned
// context is cancelled by the first SIGINT/SIGTERM (or when parent is
// done); the second calls h.Hard; SIGHUP calls h.Hangup. The returned stop
// function releases the signal handlers and cancels the context; it is
// safe to call more than once, from any goroutine.
func TwoStepWith(parent context.Context, h Handlers) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 4)
	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if h.Hangup != nil {
		sigs = append(sigs, syscall.SIGHUP)
	}
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		stops := 0
		for {
			var s os.Signal
			select {
			case s = <-ch:
			case <-done:
				return
			}
			if s == syscall.SIGHUP {
				if stops == 0 {
					h.Hangup()
				}
				continue
			}
			stops++
			switch {
			case stops == 1:
				cancel()
				if h.Stop != nil {
					h.Stop(s)
				}
			case stops == 2 && h.Hard != nil:
				h.Hard(s)
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}
}
