package pcapmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/capture"
	"github.com/ringtap/ringtap/pkg/export"
	"github.com/ringtap/ringtap/pkg/linkwatch"
	"github.com/ringtap/ringtap/pkg/pcapio"
	"github.com/ringtap/ringtap/pkg/storage"
)

// Desired is one capture the manager should run: an association of an
// interface and a filter, with its output.
type Desired struct {
	Name      string
	Interface string
	// Spec: Interfaces is filled in by the manager.
	Spec capture.Spec
	// Storage: Interfaces, Stats, OnFinish and Pinned are filled in.
	Storage storage.Options
	// Export uploads finished files; nil: none.
	Export      *export.Config
	UploadGrace time.Duration
	// Key identifies the configuration: a desired capture whose Key
	// changed is restarted, one whose Key is the same is left alone.
	Key string
}

// Links is what the manager needs of a link watcher.
type Links interface {
	Lookup(name string) (linkwatch.Link, bool)
	Subscribe() (<-chan struct{}, func())
	Synced() bool
}

// Options configure a Manager.
type Options struct {
	Engine *capture.Engine
	Links  Links
	Logger *slog.Logger
	// RetryMin and RetryMax bound the backoff before a capture that
	// failed to start is tried again (default 1 s, 1 min).
	RetryMin, RetryMax time.Duration
	// Resync: reconcile at least this often (default 5 s).
	Resync time.Duration
}

// Capture states, as /status.json reports them.
const (
	StateStarting = agent.CaptureStarting
	StateRunning  = agent.CaptureRunning
	StateWaiting  = agent.CaptureWaitingForInterface
	StateStopping = agent.CaptureStopping
	StateFailed   = agent.CaptureFailed
)

// Manager holds the desired set of captures and the running set, and
// reconciles them whenever either set or the interfaces change. It is a
// component of the agent's tree (Run). Reconciling is level-triggered:
// applying the same desired set twice changes nothing, and one association
// never runs twice.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	desired map[string]Desired
	gen     uint64
	applied uint64            // the last generation reconciled
	entries map[string]*entry // the reconcile goroutine's; read under mu
	kick    chan struct{}
	running bool
}

// New returns a Manager; Run starts it.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Second
	}
	return &Manager{opts: opts, log: opts.Logger, desired: map[string]Desired{}, entries: map[string]*entry{},
		kick: make(chan struct{}, 1)}
}

// SetDesired replaces the desired set. The manager applies the difference
// at once: captures added start, changed ones restart, removed ones stop,
// the others are not touched. Names must be unique.
func (m *Manager) SetDesired(ds []Desired) error {
	next := make(map[string]Desired, len(ds))
	for _, d := range ds {
		if d.Name == "" || d.Interface == "" {
			return errors.New("a desired capture needs a name and an interface")
		}
		if _, dup := next[d.Name]; dup {
			return fmt.Errorf("capture %q is given twice", d.Name)
		}
		next[d.Name] = d
	}
	m.mu.Lock()
	m.desired = next
	m.gen++
	m.mu.Unlock()
	m.poke()
	return nil
}

// Apply sets the desired set and waits until it has been reconciled once
// (or ctx ends).
func (m *Manager) Apply(ctx context.Context, ds []Desired) error {
	if err := m.SetDesired(ds); err != nil {
		return err
	}
	m.mu.Lock()
	want := m.gen
	m.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		m.mu.Lock()
		done := m.applied >= want
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then stops every capture: each drains its
// rings and finishes its file, and each exporter gets its upload grace to
// empty its spool. It returns nil after a clean stop.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("capture manager already running")
	}
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
	}()
	var linkCh <-chan struct{}
	if m.opts.Links != nil {
		ch, unsub := m.opts.Links.Subscribe()
		defer unsub()
		linkCh = ch
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	lastFull := time.Time{}
	for {
		now := time.Now()
		full := now.Sub(lastFull) >= m.opts.Resync
		if full {
			lastFull = now
		}
		m.reconcile(ctx, full)
		select {
		case <-ctx.Done():
			return m.stopAll()
		case <-m.kick:
		case <-linkCh:
		case <-t.C:
		}
	}
}

// entry is one desired capture and what runs for it.
type entry struct {
	d       Desired
	state   string
	since   time.Time
	lastErr string
	ifindex int
	hook    string

	cap *capture.Capture
	rec *storage.Recorder
	exp *exporterRun

	failures int
	retryAt  time.Time

	// Counters of the capture runs that ended (interface gone and
	// back), so that the reported counters stay monotonic.
	acc      counters
	accWrote uint64
	recDone  storage.Stats
}

// exporterRun is one capture's exporter and its goroutine.
type exporterRun struct {
	x      *export.Exporter
	cancel context.CancelFunc
	done   chan error
	grace  time.Duration
}

// reconcile makes the running set match the desired one.
func (m *Manager) reconcile(ctx context.Context, full bool) {
	m.mu.Lock()
	desired := m.desired
	gen := m.gen
	m.mu.Unlock()

	// Removed or changed: stop.
	for name, e := range m.entries {
		d, ok := desired[name]
		if ok && d.Key == e.d.Key {
			continue
		}
		m.stopEntry(e, StateStopping)
		m.closeExporter(e)
		m.mu.Lock()
		delete(m.entries, name)
		m.mu.Unlock()
		if ok {
			m.log.Info("capture changed: restarting it", "capture", name)
		} else {
			m.log.Info("capture removed", "capture", name)
		}
	}
	// Added.
	names := make([]string, 0, len(desired))
	for name := range desired {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := m.entries[name]; ok {
			continue
		}
		e := &entry{d: desired[name], state: StateStarting, since: time.Now()}
		if err := m.startExporter(e); err != nil {
			e.state, e.lastErr = StateFailed, err.Error()
			m.log.Error("capture cannot upload: it will not start until its export settings are fixed", "capture", name, "error", err)
		}
		m.mu.Lock()
		m.entries[name] = e
		m.mu.Unlock()
	}
	// Each entry towards its goal.
	for _, name := range names {
		e := m.entries[name]
		if e.state == StateFailed && e.exp == nil && e.d.Export != nil {
			continue // its export settings are wrong: only a change helps
		}
		m.step(ctx, e)
	}
	m.mu.Lock()
	if gen > m.applied {
		m.applied = gen
	}
	m.mu.Unlock()
}

// step moves one entry: a running capture whose interface went, was
// renamed away or replaced is stopped; a stopped one whose interface is
// there is started.
func (m *Manager) step(ctx context.Context, e *entry) {
	link, present := m.lookup(e.d.Interface)
	if e.cap != nil {
		select {
		case <-e.cap.Done():
			err := e.cap.Err()
			gone := err == nil || errors.Is(err, capture.ErrInterfaceGone)
			next := StateWaiting
			if !gone {
				next = StateFailed
			}
			m.stopEntry(e, next)
			if !gone {
				m.fail(e, err)
			}
			return
		default:
		}
		if !present || link.Index != e.ifindex {
			// Gone, renamed away, or a new interface under the name.
			m.stopEntry(e, StateWaiting)
			m.log.Info("interface of a capture went away: waiting for it", "capture", e.d.Name, "interface", e.d.Interface)
			if !present {
				return
			}
		} else {
			return
		}
	}
	if !present {
		if m.opts.Links == nil || m.opts.Links.Synced() {
			m.setState(e, StateWaiting, "")
		}
		return
	}
	if time.Now().Before(e.retryAt) {
		return
	}
	if ctx.Err() != nil {
		return
	}
	if err := m.startEntry(e, link); err != nil {
		m.fail(e, err)
		return
	}
	e.failures = 0
	m.setState(e, StateRunning, "")
	m.mu.Lock()
	e.lastErr = "" // running again: an earlier failure is history
	m.mu.Unlock()
}

func (m *Manager) lookup(name string) (linkwatch.Link, bool) {
	if m.opts.Links == nil {
		return linkwatch.Link{Name: name}, true
	}
	return m.opts.Links.Lookup(name)
}

// fail records a start or run failure and schedules a retry with backoff.
func (m *Manager) fail(e *entry, err error) {
	e.failures++
	d := m.opts.RetryMin << min(e.failures-1, 16)
	if d > m.opts.RetryMax || d <= 0 {
		d = m.opts.RetryMax
	}
	e.retryAt = time.Now().Add(d)
	m.setState(e, StateFailed, err.Error())
	m.log.Error("capture failed; retrying", "capture", e.d.Name, "interface", e.d.Interface, "retry_in", d.Round(time.Millisecond), "error", err)
}

func (m *Manager) setState(e *entry, state, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.state != state {
		e.since = time.Now()
	}
	e.state = state
	if lastErr != "" {
		e.lastErr = lastErr
	}
}

// startEntry opens the capture's recorder and starts the capture on link.
func (m *Manager) startEntry(e *entry, link linkwatch.Link) error {
	lt, err := capture.LinkTypeFor(link.EncapType, link.Name)
	if err != nil {
		return err
	}
	spec := e.d.Spec
	spec.Name = e.d.Name
	spec.Interfaces = []string{e.d.Interface}
	snap := spec.SnapLen
	if snap == 0 {
		snap = capture.DefaultSnapLen
	}
	sopts := e.d.Storage
	sopts.Interfaces = []pcapio.Interface{{Name: e.d.Interface, LinkType: lt, SnapLen: snap}}
	if sopts.Logger == nil {
		sopts.Logger = m.log.With("capture", e.d.Name)
	}
	var c *capture.Capture
	var mu sync.Mutex
	sopts.Stats = func() []pcapio.InterfaceStats {
		mu.Lock()
		cc := c
		mu.Unlock()
		if cc == nil {
			return nil
		}
		return cumulativeStats(cc)
	}
	if e.exp != nil {
		x := e.exp.x
		sopts.OnFinish = func(ff storage.FinishedFile) {
			if err := x.Enqueue(ff); err != nil {
				m.log.Error("file not queued for upload: it stays on disk but is not uploaded", "capture", e.d.Name, "file", ff.Path, "error", err)
			}
		}
		sopts.Pinned = x.Pending
	}
	rec, err := storage.NewRecorder(sopts)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	cc, err := m.opts.Engine.Start(spec, rec)
	if err != nil {
		if cerr := rec.Close(); cerr != nil {
			m.log.Warn("close output of a capture that did not start", "capture", e.d.Name, "error", cerr)
		}
		return err
	}
	mu.Lock()
	c = cc
	mu.Unlock()
	m.mu.Lock()
	e.cap, e.rec, e.ifindex, e.hook = cc, rec, link.Index, cc.HookName()
	m.mu.Unlock()
	m.log.Info("capture running", "capture", e.d.Name, "interface", e.d.Interface, "hook", e.hook)
	return nil
}

// stopEntry stops a running capture (draining it) and finishes its files;
// it returns what went wrong doing so.
func (m *Manager) stopEntry(e *entry, next string) error {
	if e.cap == nil {
		m.setState(e, next, "")
		return nil
	}
	m.setState(e, StateStopping, "")
	var errs []error
	if err := e.cap.Stop(); err != nil {
		errs = append(errs, err)
	}
	st, serr := e.cap.Stats()
	if err := e.rec.Close(); err != nil {
		errs = append(errs, fmt.Errorf("finish output: %w", err))
	}
	rs := e.rec.Stats()
	m.mu.Lock()
	if serr == nil {
		for _, is := range st.Interfaces {
			e.acc.add(is.Total())
		}
	}
	e.accWrote += st.Written
	e.recDone = addStorage(e.recDone, rs)
	e.cap, e.rec = nil, nil
	m.mu.Unlock()
	// The run's own counters: seen = matched + rejected, matched =
	// captured + ring_drops + copy_failures, and written + write_drops =
	// handed to the recorder (= captured, once drained).
	var run counters
	for _, is := range st.Interfaces {
		run.add(is.Total())
	}
	m.log.Info("capture stopped", "capture", e.d.Name, "interface", e.d.Interface,
		"seen", run.Seen, "matched", run.Matched, "captured", run.Captured, "ring_drops", run.Dropped,
		"copy_failures", run.CopyFailed, "handed", st.Written, "written", rs.PacketsWritten, "write_drops", rs.WriteDrops,
		"files", rs.FilesWritten)
	if err := errors.Join(errs...); err != nil {
		m.log.Error("capture stopped with an error", "capture", e.d.Name, "error", err)
		m.setState(e, next, err.Error())
		return err
	}
	m.setState(e, next, "")
	return nil
}

func addStorage(a, b storage.Stats) storage.Stats {
	a.FilesWritten += b.FilesWritten
	a.BytesWritten += b.BytesWritten
	a.PacketsWritten += b.PacketsWritten
	a.WriteDrops += b.WriteDrops
	a.WriteErrors += b.WriteErrors
	return a
}

func (m *Manager) startExporter(e *entry) error {
	if e.d.Export == nil {
		return nil
	}
	x, err := export.New(*e.d.Export)
	if err != nil {
		return fmt.Errorf("start uploads: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &exporterRun{x: x, cancel: cancel, done: make(chan error, 1), grace: e.d.UploadGrace}
	go func() { r.done <- x.Run(ctx) }()
	e.exp = r
	return nil
}

// closeExporter gives the exporter its grace to empty the spool, then
// stops it; what is left is uploaded by the next start.
func (m *Manager) closeExporter(e *entry) {
	r := e.exp
	if r == nil {
		return
	}
	e.exp = nil
	ctx, cancel := context.WithTimeout(context.Background(), r.grace)
	remaining, derr := r.x.Drain(ctx)
	cancel()
	r.cancel()
	rerr := <-r.done
	cerr := r.x.Close()
	if remaining > 0 {
		m.log.Warn("files still wait for upload in the spool; the next start uploads them", "capture", e.d.Name, "files", remaining)
	}
	if err := errors.Join(ignoreClosed(derr), rerr, cerr); err != nil {
		m.log.Error("stop uploads", "capture", e.d.Name, "error", err)
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, export.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// stopAll stops every capture, then every exporter (each with its grace,
// in parallel).
func (m *Manager) stopAll() error {
	var errs []error
	for _, e := range m.entries {
		if err := m.stopEntry(e, StateStopping); err != nil {
			errs = append(errs, fmt.Errorf("capture %s: %w", e.d.Name, err))
		}
	}
	var wg sync.WaitGroup
	for _, e := range m.entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.closeExporter(e)
		}()
	}
	wg.Wait()
	m.mu.Lock()
	for name := range m.entries {
		delete(m.entries, name)
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}

// cumulativeStats are a capture's counters per interface, as the
// statistics blocks count them.
func cumulativeStats(c *capture.Capture) []pcapio.InterfaceStats {
	st, err := c.Stats()
	if err != nil {
		return nil
	}
	now := time.Now().UnixNano()
	out := make([]pcapio.InterfaceStats, len(st.Interfaces))
	for i, is := range st.Interfaces {
		t := is.Total()
		out[i] = pcapio.InterfaceStats{Timestamp: now, Received: t.Seen, Dropped: t.Lost(), Accepted: t.Matched}
	}
	return out
}
