package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"
)

// ErrStopTimeout is wrapped by Tree.Run's error when a component did not
// return within TreeOptions.StopTimeout of its context being cancelled.
var ErrStopTimeout = errors.New("did not stop in time")

// TreeOptions configure a Tree. Zero fields take the defaults in their
// comments.
type TreeOptions struct {
	Logger *slog.Logger // slog.Default()
	// BackoffBase is the wait before the first restart of a failed
	// component; each further consecutive failure doubles it, up to
	// BackoffMax. 1s and 60s.
	BackoffBase, BackoffMax time.Duration
	// BackoffJitter is the largest fraction taken at random off each
	// wait, so that components failing together do not restart in step.
	// 0.2; a negative value means none.
	BackoffJitter float64
	// StableAfter: a component that ran this long before it failed is
	// restarted after BackoffBase again. 2×BackoffMax.
	StableAfter time.Duration
	// StopTimeout bounds the graceful stop: how long Run waits for the
	// components to return once its context is done. 10s.
	StopTimeout time.Duration
}

func (o TreeOptions) withDefaults() TreeOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 60 * time.Second
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffBase)
	switch {
	case o.BackoffJitter == 0:
		o.BackoffJitter = 0.2
	case o.BackoffJitter < 0:
		o.BackoffJitter = 0
	case o.BackoffJitter > 0.9:
		o.BackoffJitter = 0.9
	}
	if o.StableAfter <= 0 {
		o.StableAfter = 2 * o.BackoffMax
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	return o
}

// Tree is the agent's supervisor: it runs its components concurrently,
// restarts each that fails after its own exponential backoff, and stops
// them all, bounded, when its context is done.
//
// It is built on suture, which runs the components, cancels them on stop,
// bounds the stop by StopTimeout and reports stop timeouts. suture's own
// restart policy is not used: it counts failures for the whole supervisor
// and, past a threshold, pauses every restart for one fixed FailureBackoff;
// below it, it restarts at once. Each component is wrapped instead in a
// service that restarts it itself with a per-component exponential
// backoff (state "backoff" while it waits), so suture never sees a failure.
type Tree struct {
	opts TreeOptions
	log  *slog.Logger
	sup  *suture.Supervisor

	mu    sync.Mutex
	comps []*supervised
	names map[string]bool
	phase int // phaseNew, phaseRunning, phaseDone
}

const (
	phaseNew = iota
	phaseRunning
	phaseDone
)

// NewTree returns a Tree with no components.
func NewTree(opts TreeOptions) *Tree {
	opts = opts.withDefaults()
	t := &Tree{opts: opts, log: opts.Logger, names: map[string]bool{}}
	t.sup = suture.New("agent", suture.Spec{
		EventHook: t.event,
		Timeout:   opts.StopTimeout,
		// The wrappers never fail (they restart their component
		// themselves), so suture's failure accounting only matters if one
		// of them had a bug: then restart it at once, never pause the tree.
		FailureThreshold: math.MaxFloat64,
		FailureDecay:     1,
		FailureBackoff:   opts.BackoffBase,
	})
	return t
}

// event logs suture's events. StopTimeout is the one expected; the others
// mean a wrapper itself failed, which is a bug.
func (t *Tree) event(e suture.Event) {
	switch e := e.(type) {
	case suture.EventStopTimeout:
		t.log.Error("component did not stop in time", "component", e.ServiceName, "timeout", t.opts.StopTimeout)
	case suture.EventServicePanic:
		t.log.Error("supervisor: component wrapper panicked", "component", e.ServiceName, "panic", e.PanicMsg, "stack", e.Stacktrace)
	default:
		t.log.Error("supervisor: "+e.String(), "event", e.Map())
	}
}

// Add adds a component under a name unique in the tree (used in logs,
// metrics and status). A component added while the tree runs starts at
// once; one added after Run returned never runs. Add panics on an empty or
// duplicate name.
func (t *Tree) Add(name string, c Component) {
	t.mu.Lock()
	if name == "" || t.names[name] {
		t.mu.Unlock()
		panic(fmt.Sprintf("agent: component name %q empty or already in the tree", name))
	}
	s := &supervised{
		name: name, c: c, log: t.log, state: StateStopped, stable: t.opts.StableAfter,
		backoff: Backoff{Base: t.opts.BackoffBase, Max: t.opts.BackoffMax, Jitter: t.opts.BackoffJitter},
	}
	t.names[name] = true
	t.comps = append(t.comps, s)
	done := t.phase == phaseDone
	t.mu.Unlock()
	if !done {
		t.sup.Add(s)
	}
}

// Run runs the components until ctx is done, then cancels each one's
// context and waits for them, at most StopTimeout. It returns nil when
// every component returned in time without an error of its own; otherwise
// an error naming those that did not stop in time (wrapping
// ErrStopTimeout) and those that returned an error while stopping. Run may
// be called once.
func (t *Tree) Run(ctx context.Context) error {
	t.mu.Lock()
	if t.phase != phaseNew {
		t.mu.Unlock()
		return errors.New("run agent tree: already run")
	}
	t.phase = phaseRunning
	t.mu.Unlock()

	_ = t.sup.Serve(ctx) // returns ctx.Err() once stopped (or timed out)

	t.mu.Lock()
	t.phase = phaseDone
	comps := append([]*supervised(nil), t.comps...)
	t.mu.Unlock()

	var late []string
	var errs []error
	for _, s := range comps {
		s.mu.Lock()
		if s.served && !s.exited {
			late = append(late, s.name)
		}
		if s.stopErr != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.name, s.stopErr))
		}
		s.mu.Unlock()
	}
	if len(late) > 0 {
		errs = append([]error{fmt.Errorf("stop agent: components %s %w (%s)",
			strings.Join(late, ", "), ErrStopTimeout, t.opts.StopTimeout)}, errs...)
	}
	return errors.Join(errs...)
}

// Components returns each component's status, in the order they were
// added.
func (t *Tree) Components() []ComponentStatus {
	t.mu.Lock()
	comps := append([]*supervised(nil), t.comps...)
	t.mu.Unlock()
	out := make([]ComponentStatus, 0, len(comps))
	for _, s := range comps {
		out = append(out, s.status())
	}
	return out
}

// Ready reports whether the tree is running with no component in restart
// backoff. When not, reason says why, one line per problem.
func (t *Tree) Ready() (bool, string) {
	t.mu.Lock()
	phase := t.phase
	t.mu.Unlock()
	switch phase {
	case phaseNew:
		return false, "supervisor not started"
	case phaseDone:
		return false, "supervisor stopped"
	}
	var reasons []string
	for _, c := range t.Components() {
		if c.State != StateBackoff {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("component %s in restart backoff (restarts %d, retry in %s): %s",
			c.Name, c.Restarts, time.Until(c.RetryAt).Round(time.Millisecond), c.LastError))
	}
	sort.Strings(reasons)
	return len(reasons) == 0, strings.Join(reasons, "\n")
}
