package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/signals"
)

// ErrHardStop is wrapped by Main.Run's error when a second signal (or
// HardStop) made it return without waiting for the tree or the hook.
var ErrHardStop = errors.New("stopped at once by a second signal")

// MainOptions configure Main. Zero fields take the defaults in their
// comments.
type MainOptions struct {
	Logger *slog.Logger // slog.Default()
	// Reload is called on SIGHUP, one call at a time; SIGHUPs that come
	// while it runs make one more call after it. Its ctx is cancelled when
	// the agent stops; its error is logged. Nil: SIGHUP is logged and
	// ignored (never the default action, which would end the process).
	Reload func(ctx context.Context) error
	// ShutdownHook is a command (program and arguments, no shell) run
	// after the tree stopped, with RINGTAP_SHUTDOWN_CLEAN=1 when the stop
	// was clean and 0 otherwise; its output is logged. Empty: none.
	ShutdownHook []string
	// ShutdownHookTimeout bounds the hook; then it is killed (with its
	// process group). 30s.
	ShutdownHookTimeout time.Duration
}

// Main is the main goroutine's part of `ringtap agent`: it runs the tree
// under the two-step stop and runs the shutdown hook.
type Main struct {
	tree *Tree
	opts MainOptions
	log  *slog.Logger

	reload chan struct{} // one pending reload

	started            sync.Once
	stopOnce, hardOnce sync.Once
	stopping, hard     chan struct{} // closed by Stop and HardStop
}

// NewMain returns a Main for tree; nothing runs until Run.
func NewMain(tree *Tree, opts MainOptions) *Main {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownHookTimeout <= 0 {
		opts.ShutdownHookTimeout = 30 * time.Second
	}
	return &Main{tree: tree, opts: opts, log: opts.Logger,
		reload: make(chan struct{}, 1), stopping: make(chan struct{}), hard: make(chan struct{})}
}

// RunMain is NewMain(tree, opts).Run(ctx).
func RunMain(ctx context.Context, tree *Tree, opts MainOptions) (clean bool, err error) {
	return NewMain(tree, opts).Run(ctx)
}

// Stop starts the graceful stop, as the first SIGINT/SIGTERM does. Calling
// it again, or after a signal, does nothing.
func (m *Main) Stop() {
	m.stopOnce.Do(func() { close(m.stopping) })
}

// HardStop makes Run return at once, not clean, as the second signal does:
// it stops waiting for the tree and kills a running shutdown hook (one not
// started yet does not run). It is safe to call more than once.
func (m *Main) HardStop() {
	m.Stop()
	m.hardOnce.Do(func() { close(m.hard) })
}

// Reload asks for a reload, as SIGHUP does.
func (m *Main) Reload() {
	select {
	case m.reload <- struct{}{}:
	default: // one is pending already; it will see the latest state
	}
}

// Run runs the tree until ctx is done, Stop is called or SIGINT/SIGTERM
// arrives; then it waits for the tree to stop (bounded by the tree's
// StopTimeout) and runs the shutdown hook. A second signal, or HardStop,
// makes it return at once with an error wrapping ErrHardStop. clean is
// true when every component stopped in time without an error and the hook
// (if any) succeeded. Run may be called once.
func (m *Main) Run(ctx context.Context) (clean bool, err error) {
	first := false
	m.started.Do(func() { first = true })
	if !first {
		return false, errors.New("run agent: already run")
	}
	sigCtx, release := signals.TwoStepWith(ctx, signals.Handlers{
		Stop: func(s os.Signal) {
			m.log.Info("signal received: stopping gracefully (send it again to stop at once)", "signal", s.String())
		},
		Hard: func(s os.Signal) {
			m.log.Warn("second signal received: stopping at once", "signal", s.String())
			m.HardStop()
		},
		Hangup: m.Reload,
	})
	defer release()

	treeCtx, cancelTree := context.WithCancel(sigCtx)
	defer cancelTree()
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-m.stopping:
			m.log.Info("stop requested: stopping gracefully")
			cancelTree()
		case <-treeCtx.Done():
		}
	})
	wg.Go(func() { m.reloadLoop(treeCtx) })

	treeDone := make(chan error, 1)
	go func() { treeDone <- m.tree.Run(treeCtx) }()

	var treeErr error
	select {
	case treeErr = <-treeDone:
	case <-m.hard:
		return false, fmt.Errorf("stop agent: components not waited for: %w", ErrHardStop)
	}
	cancelTree()
	helpers := make(chan struct{})
	go func() { wg.Wait(); close(helpers) }()
	select {
	case <-helpers:
	case <-m.hard:
		return false, fmt.Errorf("stop agent: reload not waited for: %w", ErrHardStop)
	}
	clean = treeErr == nil
	if treeErr != nil {
		m.log.Error("agent stopped, not cleanly", "err", treeErr)
	} else {
		m.log.Info("agent stopped cleanly")
	}

	if len(m.opts.ShutdownHook) == 0 {
		return clean, treeErr
	}
	select {
	case <-m.hard:
		return false, errors.Join(treeErr, fmt.Errorf("shutdown hook not run: %w", ErrHardStop))
	default:
	}
	hookCtx, cancelHook := context.WithCancel(context.Background())
	defer cancelHook()
	hookDone := make(chan struct{})
	defer close(hookDone)
	go func() {
		select {
		case <-m.hard:
			cancelHook()
		case <-hookDone:
		}
	}()
	hookErr := runHook(hookCtx, m.log, m.opts.ShutdownHook, m.opts.ShutdownHookTimeout, clean)
	if hookErr != nil {
		if hookCtx.Err() != nil {
			hookErr = fmt.Errorf("%w: %w", hookErr, ErrHardStop)
		}
		m.log.Error("shutdown hook", "err", hookErr)
		return false, errors.Join(treeErr, hookErr)
	}
	return clean, treeErr
}

// reloadLoop calls Reload for each request, one at a time, until ctx is
// done.
func (m *Main) reloadLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.reload:
		}
		if m.opts.Reload == nil {
			m.log.Info("SIGHUP: nothing to reload, ignored")
			continue
		}
		m.log.Info("reloading")
		start := time.Now()
		if err := m.opts.Reload(ctx); err != nil {
			m.log.Error("reload", "err", err, "took", time.Since(start).Round(time.Millisecond))
			continue
		}
		m.log.Info("reloaded", "took", time.Since(start).Round(time.Millisecond))
	}
}
