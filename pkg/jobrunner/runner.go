package jobrunner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/jobapi"
)

// Options configure a Runner. Zero values take the defaults in their
// comments.
type Options struct {
	// ConsoleURL is https://host[:port] (certmgr.Manager.ConsoleURL).
	ConsoleURL string
	// TLSConfig is the client configuration for the console
	// (certmgr.Manager.TLSConfig), used when Transport is nil.
	TLSConfig *tls.Config
	// Transport, when set, makes the runner's RoundTripper from its
	// settings (certmgr.Manager.Transport: fresh connections after a new
	// enrollment); TLSConfig is then unused.
	Transport func(template *http.Transport) http.RoundTripper
	// Capture starts the runs' captures (Manager(pcapmgr.Manager)).
	Capture Capturer
	// Dir is the jobs directory (config.Jobs.DirIn(state dir)); created
	// if missing, mode 0700.
	Dir string
	// Limits are max_concurrent, max_bytes and min_free (Dir is Dir
	// above); the zero value is config.DefaultJobs().
	Limits config.Jobs
	// Export is the agent's export section for jobs whose destination is
	// S3; nil, or a func returning nil: such jobs fail, saying so.
	Export func() *config.Export
	// Host is {host} in S3 object keys: os.Hostname().
	Host string
	// Application names the writer in the result files ("ringtap v1.2.3").
	Application string
	Logger      *slog.Logger // slog.Default()

	// ProgressInterval: 1s. CancelInterval: 1s, each wait moved by up to
	// ±CancelJitter of it (0.2).
	ProgressInterval, CancelInterval time.Duration
	CancelJitter                     float64
	// BackoffMin and BackoffMax bound the retries of a request: 1s, 30s.
	BackoffMin, BackoffMax time.Duration
	// StopGrace is how long a graceful stop keeps uploading and ending
	// the runs: 5s.
	StopGrace time.Duration
	// LiveIdle: a live push ends when the console has not wanted it for
	// this long: 5s.
	LiveIdle time.Duration
	// ChunkSize is the size of an upload's PATCH bodies: 8 MiB.
	ChunkSize int64
	// RequestTimeout bounds a request (a PATCH: ChunkTimeout, 2m): 30s.
	RequestTimeout, ChunkTimeout time.Duration
	// Jitter returns a uniform number in [0, 1): math/rand/v2.Float64.
	Jitter func() float64
}

// Runner is the Component that runs the device's capture jobs. See the
// package documentation.
type Runner struct {
	opts   Options
	log    *slog.Logger
	client *http.Client
	base   *url.URL
	kick   chan struct{}
	stats  counters

	runMu sync.Mutex // one Run at a time

	mu      sync.Mutex
	limits  config.Jobs
	offer   []jobapi.AgentJob
	runs    map[int64]*run // of the running Run
	ended   map[int64]bool // runs this process gave up or finished: never claimed again
	running bool
	bad     map[string]error // run directories left alone
}

// New returns a Runner; Run starts it.
func New(opts Options) (*Runner, error) {
	if opts.Capture == nil {
		return nil, errors.New("job runner: no pcap manager")
	}
	if opts.TLSConfig == nil && opts.Transport == nil {
		return nil, errors.New("job runner: no TLS configuration")
	}
	if opts.Dir == "" {
		return nil, errors.New("job runner: no jobs directory")
	}
	u, err := url.Parse(opts.ConsoleURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("job runner: console URL %q: want https://HOST[:PORT]", opts.ConsoleURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Export == nil {
		opts.Export = func() *config.Export { return nil }
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ProgressInterval, time.Second)
	def(&opts.CancelInterval, time.Second)
	def(&opts.BackoffMin, time.Second)
	def(&opts.BackoffMax, 30*time.Second)
	opts.BackoffMax = max(opts.BackoffMax, opts.BackoffMin)
	def(&opts.StopGrace, 5*time.Second)
	def(&opts.LiveIdle, 5*time.Second)
	def(&opts.RequestTimeout, 30*time.Second)
	def(&opts.ChunkTimeout, 2*time.Minute)
	if opts.CancelJitter <= 0 || opts.CancelJitter >= 1 {
		opts.CancelJitter = 0.2
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 8 << 20
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	r := &Runner{opts: opts, log: opts.Logger, base: u, kick: make(chan struct{}, 1),
		runs: map[int64]*run{}, ended: map[int64]bool{}, bad: map[string]error{}}
	if err := r.SetLimits(opts.Limits); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:       opts.TLSConfig,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: opts.ChunkTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
	}
	var rt http.RoundTripper = tr
	if opts.Transport != nil {
		rt = opts.Transport(tr)
	}
	r.client = &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return r, nil
}

// SetLimits changes max_concurrent, max_bytes and min_free (a reload);
// they apply to the runs claimed from now on. The zero value is
// config.DefaultJobs().
func (r *Runner) SetLimits(l config.Jobs) error {
	if l == (config.Jobs{}) {
		l = config.DefaultJobs()
	}
	if l.MaxConcurrent <= 0 || l.MaxBytes <= 0 {
		return fmt.Errorf("job runner: max_concurrent %d, max_bytes %d: want both above 0", l.MaxConcurrent, l.MaxBytes)
	}
	l.Dir = r.opts.Dir
	r.mu.Lock()
	r.limits = l
	r.mu.Unlock()
	r.poke()
	return nil
}

// Offer takes the device's runs that have not ended, as the console's
// long poll lists them (poller.Jobs). It does not block: the runner
// claims what it can take, and hands a cancel to the runs it has.
func (r *Runner) Offer(jobs []jobapi.AgentJob) {
	r.mu.Lock()
	r.offer = append([]jobapi.AgentJob(nil), jobs...)
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run carries on the runs found in the jobs directory, then claims and
// runs the runs offered, until ctx ends. Then every run stops its
// capture and gets StopGrace to upload and end; Run returns once every
// run's goroutines have. It returns an error only when the jobs
// directory cannot be used.
func (r *Runner) Run(ctx context.Context) error {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	defer r.client.CloseIdleConnections()
	if err := os.MkdirAll(r.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("job runner: create the jobs directory: %w", err)
	}
	found, err := scan(r.opts.Dir)
	if err != nil {
		return fmt.Errorf("job runner: %w", err)
	}
	var wg sync.WaitGroup
	r.mu.Lock()
	r.running = true
	r.bad = found.bad
	for d, err := range found.bad {
		r.log.Error("a run directory cannot be read: it is left as it is, remove it once you have looked", "dir", d, "error", err)
	}
	for _, rec := range found.records {
		rn := r.newRun(rec)
		r.runs[rec.ID] = rn
		r.log.Info("carrying on a run from before the restart", "job", rec.ID, "state", rec.State, "pid", rec.PID)
		if rec.HasFile && (rec.State == stateUploading || rec.State == stateFinishing) {
			rn.budget = runBudget{onDisk: rec.Size}
		}
		if rec.State == stateUploading {
			rn.pending = "uploading" // the console may not have heard it
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rn.run(ctx)
		}()
	}
	r.mu.Unlock()
	defer func() {
		wg.Wait()
		r.mu.Lock()
		r.running = false
		r.runs = map[int64]*run{}
		r.mu.Unlock()
	}()

	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, rn := range r.reconcile() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rn.run(ctx)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-t.C:
		}
	}
}

// reconcile hands the offer to the runs it has and returns the runs to
// start: queued runs, oldest first, while fewer than max_concurrent runs
// claim or capture.
func (r *Runner) reconcile() []*run {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := 0
	for _, rn := range r.runs {
		if rn.busy() {
			busy++
		}
	}
	var queued []jobapi.AgentJob
	offered := make(map[int64]bool, len(r.offer))
	for _, j := range r.offer {
		offered[j.ID] = true
		if rn := r.runs[j.ID]; rn != nil {
			if j.CancelRequested {
				rn.requestCancel("the console's long poll")
			}
			continue
		}
		if j.State == "queued" && j.Claim == "" && !r.ended[j.ID] {
			queued = append(queued, j)
		}
	}
	for id := range r.ended {
		if !offered[id] {
			delete(r.ended, id) // the console lists it no more: it cannot come back
		}
	}
	sort.Slice(queued, func(a, b int) bool {
		if !queued[a].CreatedAt.Equal(queued[b].CreatedAt) {
			return queued[a].CreatedAt.Before(queued[b].CreatedAt)
		}
		return queued[a].ID < queued[b].ID
	})
	var start []*run
	for _, j := range queued {
		if busy >= r.limits.MaxConcurrent {
			if len(start) == 0 {
				r.log.Debug("jobs wait on the console: the agent runs its max_concurrent already", "queued", len(queued), "max_concurrent", r.limits.MaxConcurrent)
			}
			break
		}
		rn := r.newRun(&record{ID: j.ID, Claim: newClaim(), Job: j, State: stateClaiming})
		r.runs[j.ID] = rn
		start = append(start, rn)
		busy++
	}
	return start
}

// forget removes rn once it has ended here.
func (r *Runner) forget(rn *run, ended bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs[rn.id] == rn {
		delete(r.runs, rn.id)
	}
	if ended {
		r.ended[rn.id] = true
	}
	r.poke()
}

// Status is the runner's state, for /status.json.
type Status struct {
	Dir           string `json:"dir"`
	MaxConcurrent int    `json:"max_concurrent"`
	MaxBytes      int64  `json:"max_bytes"`
	MinFree       string `json:"min_free"`
	// Held is what the runs hold of max_bytes now.
	Held int64       `json:"held"`
	Runs []RunStatus `json:"runs"`
	// Unreadable are run directories the runner left alone.
	Unreadable []string `json:"unreadable,omitempty"`
}

// RunStatus is one run's state.
type RunStatus struct {
	ID          int64    `json:"id"`
	State       string   `json:"state"`
	Interfaces  []string `json:"interfaces"`
	Filter      string   `json:"filter"`
	Destination string   `json:"destination"`
	jobapi.Progress
	StartedAt time.Time `json:"started_at,omitzero"`
	// Outcome and Reason: how the run ends, once decided.
	Outcome string `json:"outcome,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Uploaded is the bytes of the result the destination confirmed.
	Uploaded  int64  `json:"uploaded"`
	Live      bool   `json:"live"`
	LastError string `json:"last_error,omitempty"`
}

// Status returns the runner's state now.
func (r *Runner) Status() Status {
	r.mu.Lock()
	s := Status{Dir: r.opts.Dir, MaxConcurrent: r.limits.MaxConcurrent, MaxBytes: r.limits.MaxBytes,
		MinFree: formatSpace(r.limits.MinFree.Percent, r.limits.MinFree.Bytes), Runs: []RunStatus{}}
	runs := make([]*run, 0, len(r.runs))
	for _, rn := range r.runs {
		runs = append(runs, rn)
		s.Held += rn.budget.held()
	}
	for d := range r.bad {
		s.Unreadable = append(s.Unreadable, d)
	}
	r.mu.Unlock()
	sort.Slice(runs, func(i, j int) bool { return runs[i].id < runs[j].id })
	sort.Strings(s.Unreadable)
	for _, rn := range runs {
		s.Runs = append(s.Runs, rn.status())
	}
	return s
}
