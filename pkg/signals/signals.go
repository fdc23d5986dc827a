package signals

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// TwoStep returns a context cancelled by the first SIGINT/SIGTERM. A second
// signal calls hard (typically os.Exit). The returned stop function releases
// the signal handlers; it is safe to call more than once.
func TwoStep(parent context.Context, hard func(os.Signal)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			hard(s)
		case <-done:
		}
	}()
	var stopped bool
	return ctx, func() {
		if stopped {
			return
		}
		stopped = true
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
