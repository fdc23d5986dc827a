package pcapmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// failed to start is tried again, and before a capture's exporter
	// that failed is run again (default 1 s, 1 min).
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
	jobs    map[string]*Job   // running jobs (StartJob), by name
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
		jobs: map[string]*Job{}, kick: make(chan struct{}, 1)}
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
			return errors.Join(m.stopJobs(), m.stopAll())
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
	runErr   error // why the last run ended, if it failed

	// Counters of the capture runs that ended (interface gone and
	// back), so that the reported counters stay monotonic.
	acc      counters
	accWrote uint64
	recDone  storage.Stats
}

// uploader is what a capture uses of its exporter, an *export.Exporter
// (an interface so that tests can give a capture one whose Run fails).
type uploader interface {
	Run(ctx context.Context) error
	Drain(ctx context.Context) (remaining int, err error)
	Close() error
	Enqueue(f storage.FinishedFile) error
	Pending(path string) bool
	Stats() export.Stats
}

// exporterRun is one capture's exporter and the goroutine that runs it
// (superviseExporter), restarting it each time it fails.
type exporterRun struct {
	x        uploader
	cancel   context.CancelFunc
	stopping chan struct{} // closed by closeExporter: no more restarts
	done     chan error
	grace    time.Duration
	restarts atomic.Uint64 // times Run was called again after a failure

	mu      sync.Mutex
	failed  error     // why Run failed, while it waits to run again
	retryAt time.Time // when it runs again
}

// backoff returns when the exporter runs again and why it failed; failed
// is nil when it is not waiting to be restarted.
func (r *exporterRun) backoff() (retryAt time.Time, failed error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryAt, r.failed
}

func (r *exporterRun) setBackoff(err error, at time.Time) {
	r.mu.Lock()
	r.failed, r.retryAt = err, at
	r.mu.Unlock()
}

// reconcile makes the running set match the desired one. Captures that
// stop together are stopped with one StopMany, and those that start
// together with one StartMany: one rebuild of an interface's programs per
// pass, however many of its captures change.
func (m *Manager) reconcile(ctx context.Context, full bool) {
	m.mu.Lock()
	desired := m.desired
	gen := m.gen
	m.mu.Unlock()

	// Removed or changed: stop, all at once.
	var leaving []*entry
	for name, e := range m.entries {
		if d, ok := desired[name]; !ok || d.Key != e.d.Key {
			leaving = append(leaving, e)
		}
	}
	sort.Slice(leaving, func(i, j int) bool { return leaving[i].d.Name < leaving[j].d.Name })
	m.stopEntries(leaving, nil)
	var wg sync.WaitGroup
	for _, e := range leaving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.closeExporter(e)
		}()
		if _, ok := desired[e.d.Name]; ok {
			m.log.Info("capture changed: restarting it", "capture", e.d.Name)
		} else {
			m.log.Info("capture removed", "capture", e.d.Name)
		}
	}
	wg.Wait()
	m.mu.Lock()
	for _, e := range leaving {
		delete(m.entries, e.d.Name)
	}
	m.mu.Unlock()
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
	// Running captures that must stop: ended by themselves (interface
	// gone, write error), or whose interface went, was renamed away or
	// replaced under its name.
	var stopping []*entry
	var next []string
	for _, name := range names {
		e := m.entries[name]
		if e.cap == nil {
			continue
		}
		select {
		case <-e.cap.Done():
			err := e.cap.Err()
			if err == nil || errors.Is(err, capture.ErrInterfaceGone) {
				stopping, next = append(stopping, e), append(next, StateWaiting)
			} else {
				stopping, next = append(stopping, e), append(next, StateFailed)
				e.runErr = err
			}
			continue
		default:
		}
		if link, present := m.lookup(e.d.Interface); !present || link.Index != e.ifindex {
			m.log.Info("interface of a capture went away: waiting for it", "capture", e.d.Name, "interface", e.d.Interface)
			stopping, next = append(stopping, e), append(next, StateWaiting)
		}
	}
	m.stopEntries(stopping, next)
	for _, e := range stopping {
		if e.runErr != nil {
			m.fail(e, e.runErr)
			e.runErr = nil
		}
	}
	// Captures that can start: their interface is there and no backoff
	// holds them.
	var starting []*entry
	var links []linkwatch.Link
	for _, name := range names {
		e := m.entries[name]
		if e.cap != nil || (e.state == StateFailed && e.exp == nil && e.d.Export != nil) {
			continue // running, or its export settings are wrong: only a change helps
		}
		link, present := m.lookup(e.d.Interface)
		if !present {
			if m.opts.Links == nil || m.opts.Links.Synced() {
				m.setState(e, StateWaiting, "")
			}
			continue
		}
		if time.Now().Before(e.retryAt) || ctx.Err() != nil {
			continue
		}
		starting, links = append(starting, e), append(links, link)
	}
	for i, err := range m.startEntries(starting, links) {
		e := starting[i]
		if err != nil {
			m.fail(e, err)
			continue
		}
		e.failures = 0
		m.setState(e, StateRunning, "")
		m.mu.Lock()
		e.lastErr = "" // running again: an earlier failure is history
		m.mu.Unlock()
	}
	m.mu.Lock()
	if gen > m.applied {
		m.applied = gen
	}
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

// startEntries opens each capture's recorder and starts the captures on
// their links with one StartMany. The i-th error answers the i-th entry.
func (m *Manager) startEntries(es []*entry, links []linkwatch.Link) []error {
	errs := make([]error, len(es))
	type pending struct {
		i   int
		rec *storage.Recorder
		cap *captureRef
	}
	var (
		reqs []capture.Request
		pend []pending
	)
	for i, e := range es {
		link := links[i]
		lt, err := capture.LinkTypeFor(link.EncapType, link.Name)
		if err != nil {
			errs[i] = err
			continue
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
		ref := &captureRef{}
		sopts.Stats = func() []pcapio.InterfaceStats {
			if c := ref.get(); c != nil {
				return cumulativeStats(c)
			}
			return nil
		}
		if e.exp != nil {
			x, name := e.exp.x, e.d.Name
			sopts.OnFinish = func(ff storage.FinishedFile) {
				if err := x.Enqueue(ff); err != nil {
					m.log.Error("file not queued for upload: it stays on disk but is not uploaded", "capture", name, "file", ff.Path, "error", err)
				}
			}
			sopts.Pinned = x.Pending
		}
		rec, err := storage.NewRecorder(sopts)
		if err != nil {
			errs[i] = fmt.Errorf("open output: %w", err)
			continue
		}
		reqs = append(reqs, capture.Request{Spec: spec, Writer: rec})
		pend = append(pend, pending{i: i, rec: rec, cap: ref})
	}
	if len(reqs) == 0 {
		return errs
	}
	caps, serrs := m.opts.Engine.StartMany(reqs)
	for k, p := range pend {
		e := es[p.i]
		if serrs[k] != nil {
			if cerr := p.rec.Close(); cerr != nil {
				m.log.Warn("close output of a capture that did not start", "capture", e.d.Name, "error", cerr)
			}
			errs[p.i] = serrs[k]
			continue
		}
		p.cap.set(caps[k])
		m.mu.Lock()
		e.cap, e.rec, e.ifindex, e.hook = caps[k], p.rec, links[p.i].Index, caps[k].HookName()
		m.mu.Unlock()
		m.log.Info("capture running", "capture", e.d.Name, "interface", e.d.Interface, "hook", e.hook)
	}
	return errs
}

// captureRef hands a capture to its recorder's Stats callback once it
// has started.
type captureRef struct {
	mu sync.Mutex
	c  *capture.Capture
}

func (r *captureRef) set(c *capture.Capture) {
	r.mu.Lock()
	r.c = c
	r.mu.Unlock()
}

func (r *captureRef) get() *capture.Capture {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

// stopEntries stops the running captures of es with one StopMany
// (draining them) and finishes their files; next[i] is the state es[i]
// goes to (nil: stopping). It returns what went wrong for each.
func (m *Manager) stopEntries(es []*entry, next []string) []error {
	errs := make([]error, len(es))
	var caps []*capture.Capture
	var idx []int
	for i, e := range es {
		if e.cap == nil {
			continue
		}
		m.setState(e, StateStopping, "")
		caps = append(caps, e.cap)
		idx = append(idx, i)
	}
	var serrs []error
	if len(caps) > 0 {
		serrs = m.opts.Engine.StopMany(caps)
	}
	for k, i := range idx {
		e := es[i]
		var errl []error
		if serrs[k] != nil {
			errl = append(errl, serrs[k])
		}
		st, serr := e.cap.Stats()
		if err := e.rec.Close(); err != nil {
			errl = append(errl, fmt.Errorf("finish output: %w", err))
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
		// captured + ring_drops + copy_failures, and written +
		// write_drops = handed to the recorder (= captured, once drained).
		var run counters
		for _, is := range st.Interfaces {
			run.add(is.Total())
		}
		m.log.Info("capture stopped", "capture", e.d.Name, "interface", e.d.Interface,
			"seen", run.Seen, "matched", run.Matched, "captured", run.Captured, "ring_drops", run.Dropped,
			"copy_failures", run.CopyFailed, "handed", st.Written, "written", rs.PacketsWritten, "write_drops", rs.WriteDrops,
			"files", rs.FilesWritten)
		errs[i] = errors.Join(errl...)
		if errs[i] != nil {
			m.log.Error("capture stopped with an error", "capture", e.d.Name, "error", errs[i])
		}
	}
	for i, e := range es {
		state := StateStopping
		if next != nil {
			state = next[i]
		}
		msg := ""
		if errs[i] != nil {
			msg = errs[i].Error()
		}
		m.setState(e, state, msg)
	}
	return errs
}

// addStorage is the sum of two recorders' counters (a capture's runs).
func addStorage(a, b storage.Stats) storage.Stats {
	a.FilesWritten += b.FilesWritten
	a.BytesWritten += b.BytesWritten
	a.PacketsWritten += b.PacketsWritten
	a.Rotations += b.Rotations
	a.CompressorBytesIn += b.CompressorBytesIn
	a.CompressorBytesOut += b.CompressorBytesOut
	a.WriteDrops += b.WriteDrops
	a.WriteErrors += b.WriteErrors
	a.PostrotateFailures += b.PostrotateFailures
	a.RetentionDeletedFiles += b.RetentionDeletedFiles
	a.RetentionDeletedBytes += b.RetentionDeletedBytes
	a.RetentionLosses += b.RetentionLosses
	a.RecoveredFiles += b.RecoveredFiles
	return a
}

func (m *Manager) startExporter(e *entry) error {
	if e.d.Export == nil {
		return nil
	}
	cfg := *e.d.Export
	if cfg.Logger == nil {
		cfg.Logger = m.log.With("capture", e.d.Name)
	}
	x, err := export.New(cfg)
	if err != nil {
		return fmt.Errorf("start uploads: %w", err)
	}
	m.runExporter(e, x)
	return nil
}

// runExporter gives e the exporter x and starts the goroutine that runs
// it until closeExporter.
func (m *Manager) runExporter(e *entry, x uploader) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &exporterRun{x: x, cancel: cancel, stopping: make(chan struct{}), done: make(chan error, 1), grace: e.d.UploadGrace}
	m.mu.Lock()
	e.exp = r
	m.mu.Unlock()
	go func() { r.done <- m.superviseExporter(ctx, e, r) }()
}

// Restarts of a failed exporter: the n-th consecutive failure waits
// RetryMin·2^(n-1), capped at RetryMax, less a random part of up to
// exporterJitter of it (as the tree restarts its components: exporters
// failing together do not restart in step, and below the cap consecutive
// waits never overlap). A Run that lasted exporterStable × RetryMax
// before it failed starts the backoff over.
const (
	exporterJitter = 0.2
	exporterStable = 2
)

func (m *Manager) exporterDelay(failures int) time.Duration {
	return agent.Backoff{Base: m.opts.RetryMin, Max: m.opts.RetryMax, Jitter: exporterJitter}.Delay(failures)
}

// errUploadsEnded is the failure of an exporter's Run that returned nil
// before it was stopped.
var errUploadsEnded = errors.New("uploads ended before they were stopped")

// uploadsRestarting begins a capture's LastError while its exporter waits
// to be restarted.
const uploadsRestarting = "uploads restarting after: "

// superviseExporter runs r's exporter until ctx ends, and again after a
// backoff each time it fails: Run returns an error, returns before ctx
// ended, or panics (recovered here; a panic in a goroutine of the
// exporter's own is not). While it waits, the capture's LastError and
// Ready say why. It returns Run's error when the last Run ended with ctx
// (nil for a clean stop), and nil when ctx ended or the exporter was
// stopped during a backoff.
func (m *Manager) superviseExporter(ctx context.Context, e *entry, r *exporterRun) error {
	name := e.d.Name
	failures := 0
	for {
		started := time.Now()
		err := m.runExporterOnce(ctx, name, r.x)
		if ctx.Err() != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		if err == nil {
			err = errUploadsEnded
		}
		now := time.Now()
		if now.Sub(started) >= exporterStable*m.opts.RetryMax {
			failures = 0
		}
		failures++
		d := m.exporterDelay(failures)
		msg := uploadsRestarting + err.Error()
		r.setBackoff(err, now.Add(d))
		m.mu.Lock()
		e.lastErr = msg
		m.mu.Unlock()
		m.log.Error("uploads failed: restarting them", "capture", name, "error", err,
			"failures", failures, "backoff", d.Round(time.Millisecond), "ran_for", now.Sub(started).Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.stopping:
			// closeExporter drains the spool itself (Drain uploads when
			// Run does not run): a Run started now would only collide.
			t.Stop()
			return nil
		case <-t.C:
		}
		r.restarts.Add(1)
		r.setBackoff(nil, time.Time{})
		m.mu.Lock()
		if e.lastErr == msg {
			e.lastErr = ""
		}
		m.mu.Unlock()
		m.log.Info("uploads restarting", "capture", name, "restarts", r.restarts.Load())
	}
}

// runExporterOnce calls x.Run once, turning a panic into an
// *agent.PanicError, logged here with its stack (still the panic's).
func (m *Manager) runExporterOnce(ctx context.Context, name string, x uploader) (err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			m.log.Error("uploads panicked", "capture", name, "panic", fmt.Sprint(v), "stack", string(stack))
			err = &agent.PanicError{Value: v, Stack: stack}
		}
	}()
	return x.Run(ctx)
}

// Ready reports whether every capture's uploads run: not while an
// exporter waits to be restarted after a failure, one line per such
// capture (for agent.HTTPOptions.ExtraReady, as a component in restart
// backoff makes the agent not ready).
func (m *Manager) Ready() (bool, string) {
	now := time.Now()
	var lines []string
	m.mu.Lock()
	for name, e := range m.entries {
		if e.exp == nil {
			continue
		}
		if at, err := e.exp.backoff(); err != nil {
			lines = append(lines, fmt.Sprintf("capture %s: %s%v (retry in %s)", name, uploadsRestarting, err, max(at.Sub(now), 0).Round(time.Millisecond)))
		}
	}
	m.mu.Unlock()
	sort.Strings(lines)
	return len(lines) == 0, strings.Join(lines, "\n")
}

// closeExporter gives the exporter its grace to empty the spool, then
// stops it, without waiting for a restart backoff; what is left is
// uploaded by the next start.
func (m *Manager) closeExporter(e *entry) {
	m.mu.Lock()
	r := e.exp
	e.exp = nil
	m.mu.Unlock()
	if r == nil {
		return
	}
	close(r.stopping)
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
	var es []*entry
	for _, e := range m.entries {
		es = append(es, e)
	}
	var errs []error
	for i, err := range m.stopEntries(es, nil) {
		if err != nil {
			errs = append(errs, fmt.Errorf("capture %s: %w", es[i].d.Name, err))
		}
	}
	var wg sync.WaitGroup
	for _, e := range es {
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
