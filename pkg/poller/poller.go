package poller

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/agent/config"
	"github.com/ringtap/ringtap/pkg/agent/desired"
	"github.com/ringtap/ringtap/pkg/jobapi"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// Manager is what the poller needs of the pcap manager.
type Manager interface {
	Apply(ctx context.Context, ds []pcapmgr.Desired) error
	Captures() []agent.CaptureStatus
}

// Jobs takes the runs of capture jobs the console has for the device
// (pkg/jobrunner's Runner). Offer must not block.
type Jobs interface {
	Offer(jobs []jobapi.AgentJob)
}

// Options configure a Poller. Zero values take the defaults in their
// comments.
type Options struct {
	// ConsoleURL is https://host[:port] (certmgr.Manager.ConsoleURL).
	ConsoleURL string
	// TLSConfig is the client configuration for the console
	// (certmgr.Manager.TLSConfig: pinned CA, current client certificate),
	// used when Transport is nil.
	TLSConfig *tls.Config
	// Transport, when set, makes the poller's RoundTripper from its
	// settings (certmgr.Manager.Transport: fresh connections after a new
	// enrollment); TLSConfig is then unused.
	Transport func(template *http.Transport) http.RoundTripper
	// Enrolled, when set, returns a channel closed at the next new
	// enrollment (certmgr.Manager.Enrolled): a poller backing off after a
	// refusal tries again at once.
	Enrolled func() <-chan struct{}
	// StateDir holds StateFile (the certificate manager's directory).
	StateDir string
	Manager  Manager
	// Jobs gets the jobs of every answer of the console; nil: the poller
	// does not ask for jobs.
	Jobs Jobs
	// Base is the local config file (YAML; nil or empty: all defaults):
	// its agent-wide settings apply to the console's captures, its own
	// captures are ignored. BaseSource names it in messages.
	Base       []byte
	BaseSource string
	// ConfigOptions are passed to config.Parse (config.WithCPUs).
	ConfigOptions []config.Option
	// Application names the writer in capture files ("ringtap v1.2.3").
	Application string
	// Interfaces returns the names of the interfaces the agent sees
	// (linkwatch); nil: none reported.
	Interfaces func() []string
	// Certificate returns the client certificate's state (certmgr); nil:
	// not reported.
	Certificate func() CertificateStatus
	// Hostname, MachineID and AgentVersion describe the device in
	// heartbeats.
	Hostname, MachineID, AgentVersion string
	Logger                            *slog.Logger // slog.Default()

	// Wait is how long the console may hold a poll: 30s.
	Wait time.Duration
	// HeartbeatInterval: 10s.
	HeartbeatInterval time.Duration
	// BackoffMin and BackoffMax bound the retries while the console is
	// away: 1s and 60s.
	BackoffMin, BackoffMax time.Duration
	// Jitter returns a uniform number in [0, 1): math/rand/v2.Float64.
	Jitter func() float64
	// DeviceID returns the device the client certificate names
	// (certmgr.Manager.DeviceID). When it changes (the agent was enrolled
	// again, as a new device), the generations seen belong to the old
	// device: the poller asks for the new device's config from its
	// start, and the captures running keep running until it arrives.
	// nil: the device never changes.
	DeviceID func() string
	// OnRefused is told when the console answers a poll or a heartbeat
	// with 401 or 403 (a revoked device, a certificate it no longer
	// accepts): certmgr.Manager.Refused, so that the agent reports that
	// it must be enrolled again. nil: nobody is told.
	OnRefused func(reason string)
}

// Status is the poller's state, for /status.json.
type Status struct {
	ConsoleURL string `json:"console_url"`
	// AppliedGeneration is the generation running; -1: none yet.
	AppliedGeneration int64     `json:"applied_generation"`
	AppliedAt         time.Time `json:"applied_at,omitzero"`
	// Restored is true when the running config was read from StateFile
	// at start and the console has not sent a newer one since.
	Restored bool `json:"restored"`
	// LastContact is the last answer from the console.
	LastContact time.Time `json:"last_contact,omitzero"`
	// LastError is the last failure to reach the console (cleared by an
	// answer); Failures counts them since the last answer; RetryAt is
	// when the next attempt is.
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"failures"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
	// ConfigError is why the last config received was not applied;
	// cleared when one is.
	ConfigError string `json:"config_error,omitempty"`
	// LastHeartbeat is the last heartbeat the console accepted.
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// JobsSeq is the console's jobs sequence number last received; 0
	// before any.
	JobsSeq int64 `json:"jobs_seq"`
}

// Poller is the Component that keeps the device's captures those the
// console asks for. See the package documentation.
type Poller struct {
	opts   Options
	log    *slog.Logger
	client *http.Client
	base   *url.URL
	kick   chan struct{} // a heartbeat now

	restoreOnce sync.Once
	applyMu     sync.Mutex // one apply at a time (poll, Reload)

	mu          sync.Mutex
	applied     *persisted // nil: none
	restored    bool
	device      string // the device seen refers to (see ownApplied)
	seen        int64  // the newest generation received, applied or not; -1 none
	jobsSeq     int64  // the newest jobs sequence number received; 0 none
	lastContact time.Time
	lastErr     string
	failures    int
	retryAt     time.Time
	configErr   string
	applyErr    string
	lastHB      time.Time
	hbFailing   bool
}

// New returns a Poller; Run starts it.
func New(opts Options) (*Poller, error) {
	if opts.Manager == nil {
		return nil, errors.New("poller: no pcap manager")
	}
	if opts.TLSConfig == nil && opts.Transport == nil {
		return nil, errors.New("poller: no TLS configuration")
	}
	if opts.StateDir == "" {
		return nil, errors.New("poller: no state directory")
	}
	u, err := url.Parse(opts.ConsoleURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("poller: console URL %q: want https://HOST[:PORT]", opts.ConsoleURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BaseSource == "" {
		opts.BaseSource = "the agent's config"
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = time.Minute
	}
	opts.BackoffMax = max(opts.BackoffMax, opts.BackoffMin)
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	p := &Poller{opts: opts, log: opts.Logger, base: u, seen: -1, kick: make(chan struct{}, 1)}
	tr := &http.Transport{
		TLSClientConfig:       opts.TLSConfig,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: opts.Wait + 30*time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
	}
	var rt http.RoundTripper = tr
	if opts.Transport != nil {
		rt = opts.Transport(tr)
	}
	p.client = &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// Status returns the poller's state now.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{ConsoleURL: p.base.String(), AppliedGeneration: -1, Restored: p.restored,
		LastContact: p.lastContact, LastError: p.lastErr, Failures: p.failures, RetryAt: p.retryAt,
		ConfigError: p.configErr, LastHeartbeat: p.lastHB, JobsSeq: p.jobsSeq}
	if p.ownApplied() {
		s.AppliedGeneration, s.AppliedAt = p.applied.Generation, p.applied.AppliedAt
	}
	if s.ConfigError == "" {
		s.ConfigError = p.applyErr
	}
	return s
}

// Run restores the last applied config (once per Poller), then polls the
// console and sends heartbeats until ctx is done. It returns nil then.
func (p *Poller) Run(ctx context.Context) error {
	p.restoreOnce.Do(func() { p.restore(ctx) })
	defer p.client.CloseIdleConnections()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.heartbeats(ctx)
	}()
	p.poll(ctx)
	wg.Wait()
	return nil
}

// restore applies StateFile, if there is one, before the console is
// asked.
func (p *Poller) restore(ctx context.Context) {
	saved, err := loadPersisted(p.opts.StateDir)
	if err != nil {
		p.log.Error("the last applied config cannot be read: no captures run until the console sends one", "error", err)
		p.setApplyErr(err.Error())
		return
	}
	if saved == nil {
		p.log.Info("no config applied before: waiting for the console's", "console", p.base.String())
		return
	}
	if saved.DeviceID == "" { // written before the device was recorded
		saved.DeviceID = p.currentDevice()
	}
	p.mu.Lock()
	p.device = saved.DeviceID
	p.mu.Unlock()
	if err := p.apply(ctx, saved, true); err != nil {
		p.log.Error("the last applied config is not usable: no captures run until the console sends one",
			"generation", saved.Generation, "error", oneLine(err))
		return
	}
}

// Reload takes a new local config file (SIGHUP): the running console
// config is checked again with its agent-wide settings and applied. On
// an error nothing changes, the previous file stays in use.
func (p *Poller) Reload(ctx context.Context, base []byte, source string) error {
	p.applyMu.Lock()
	cur := p.current()
	if cur == nil {
		p.opts.Base, p.opts.BaseSource = base, source
		p.applyMu.Unlock()
		return nil
	}
	if _, err := p.desired(base, cur); err != nil {
		p.applyMu.Unlock()
		return err
	}
	p.opts.Base, p.opts.BaseSource = base, source
	p.applyMu.Unlock()
	return p.apply(ctx, cur, false)
}

func (p *Poller) current() *persisted {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// desired checks cfg with base and returns its desired set.
func (p *Poller) desired(base []byte, cfg *persisted) ([]pcapmgr.Desired, error) {
	source := fmt.Sprintf("console config generation %d", cfg.Generation)
	c, err := ParseConfig(base, cfg.Captures, source, p.opts.ConfigOptions...)
	if err != nil {
		return nil, err
	}
	ds, err := desired.Captures(c, p.opts.Application)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, source, err)
	}
	return ds, nil
}

// apply checks cfg, hands it to the pcap manager and saves it. A config
// that fails the checks changes nothing.
func (p *Poller) apply(ctx context.Context, cfg *persisted, restoring bool) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	ds, err := p.desired(p.opts.Base, cfg)
	if err != nil {
		p.mu.Lock()
		p.configErr = oneLine(err)
		p.mu.Unlock()
		return err
	}
	if err := p.opts.Manager.Apply(ctx, ds); err != nil {
		err = fmt.Errorf("apply console config generation %d: %w", cfg.Generation, err)
		p.setApplyErr(oneLine(err))
		return err
	}
	if !restoring {
		cfg.AppliedAt = time.Now().UTC()
		if err := cfg.save(p.opts.StateDir); err != nil {
			// Running, but not restored by a restart: say so.
			p.log.Error("the config runs but could not be saved: a restart without the console will not restore it", "generation", cfg.Generation, "error", err)
			p.setApplyErr(err.Error())
		} else {
			p.setApplyErr("")
		}
	}
	p.mu.Lock()
	p.applied, p.restored, p.configErr = cfg, restoring, ""
	if p.ownApplied() {
		p.seen = max(p.seen, cfg.Generation)
	}
	p.mu.Unlock()
	names := make([]string, 0, len(ds))
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if restoring {
		p.log.Info("restored the last applied config", "generation", cfg.Generation, "captures", names, "applied_at", cfg.AppliedAt)
	} else {
		p.log.Info("applied the console's config", "generation", cfg.Generation, "captures", names)
	}
	p.heartbeatSoon()
	return nil
}

func (p *Poller) setApplyErr(s string) {
	p.mu.Lock()
	p.applyErr = s
	p.mu.Unlock()
}

// poll asks the console for newer configs until ctx is done.
func (p *Poller) poll(ctx context.Context) {
	for ctx.Err() == nil {
		cfg, err := p.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && cfg == nil {
			p.contact() // 304
			continue
		}
		if errors.Is(err, errReenrolled) {
			continue
		}
		if err == nil {
			// A config the validator rejects is an answer, not a
			// failure: the next poll waits for a newer generation.
			if err = p.received(ctx, cfg); err == nil || errors.Is(err, ErrBadConfig) {
				continue
			}
		}
		d := p.failed(err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-p.enrolled(): // a new certificate: it may be accepted
			t.Stop()
		}
	}
}

// enrolled is Options.Enrolled's channel, or nil (never ready).
func (p *Poller) enrolled() <-chan struct{} {
	if p.opts.Enrolled == nil {
		return nil
	}
	return p.opts.Enrolled()
}

// errReenrolled is a long poll ended by a new enrollment: the poller asks
// again at once, as the new device.
var errReenrolled = errors.New("a new enrollment ended the long poll")

// errGarbage is an answer the poller cannot use at all: it backs off.
var errGarbage = errors.New("the console's answer is not a config")

// fetch makes one long poll. It returns (nil, nil) on 304, and
// errReenrolled when a new enrollment ended it.
func (p *Poller) fetch(ctx context.Context) (_ *Config, err error) {
	u := *p.base
	u.Path += ConfigPath
	q := url.Values{"wait": {p.opts.Wait.String()}}
	p.mu.Lock()
	p.checkDevice()
	if p.seen >= 0 {
		q.Set("after", fmt.Sprint(p.seen))
	}
	if p.opts.Jobs != nil {
		q.Set("jobs", fmt.Sprint(p.jobsSeq))
	}
	p.mu.Unlock()
	u.RawQuery = q.Encode()
	rctx, cancel := context.WithTimeout(ctx, p.opts.Wait+30*time.Second)
	defer cancel()
	// A new enrollment ends the long poll: it waits for the old device's
	// config, and the next one asks for the new device's.
	var reenrolled atomic.Bool
	if ch := p.enrolled(); ch != nil {
		go func() {
			select {
			case <-ch:
				reenrolled.Store(true)
				cancel()
			case <-rctx.Done():
			}
		}()
		defer func() {
			if err != nil && reenrolled.Load() {
				err = errReenrolled
			}
		}()
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, nil
	case http.StatusOK:
	default:
		return nil, apiError(resp.StatusCode, raw)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %w", errGarbage, err)
	}
	if cfg.Generation < 0 || cfg.Captures == nil {
		return nil, fmt.Errorf("%w: generation %d, captures %s", errGarbage, cfg.Generation, short(cfg.Captures))
	}
	return &cfg, nil
}

// received handles an answer of the console: its jobs go to the job
// runner, its config is applied when its generation is newer. An answer
// with neither a newer generation nor a newer jobs sequence number is
// the console's mistake (errGarbage).
func (p *Poller) received(ctx context.Context, c *Config) error {
	p.mu.Lock()
	seen, applied, jobsSeq, device := p.seen, int64(-1), p.jobsSeq, p.device
	foreign := p.applied != nil && !p.ownApplied()
	if p.ownApplied() {
		applied = p.applied.Generation
	}
	p.mu.Unlock()
	newGen := c.Generation > applied && (seen < 0 || c.Generation > seen)
	newJobs := p.opts.Jobs != nil && c.JobsSeq > jobsSeq
	if newGen && foreign && c.Generation == 0 {
		// Enrolled again, and the new device was never configured
		// (generation 0 is the console's before any change): that is no
		// config yet, so the old device's captures keep running until
		// the new device gets one.
		p.contact()
		p.offerJobs(c)
		p.mu.Lock()
		p.seen = 0
		p.mu.Unlock()
		p.log.Info("the new device has no captures configured yet: the previous device's keep running until it has", "device_id", device)
		p.heartbeatSoon() // the new device's first word
		return nil
	}
	if !newGen && !newJobs {
		// Asked for newer than seen: an older one is the console's
		// mistake, and applying it would go back in time.
		return fmt.Errorf("%w: generation %d is not newer than %d", errGarbage, c.Generation, max(seen, applied))
	}
	p.contact()
	p.offerJobs(c)
	if !newGen {
		return nil // only the jobs changed
	}
	p.mu.Lock()
	p.seen = c.Generation
	p.mu.Unlock()
	err := p.apply(ctx, &persisted{DeviceID: device, Generation: c.Generation, Captures: c.Captures}, false)
	if err != nil {
		p.log.Error("config from the console not applied: the running captures are unchanged",
			"generation", c.Generation, "error", oneLine(err))
		p.heartbeatSoon()
		if !errors.Is(err, ErrBadConfig) {
			// Not the config's fault (ctx, manager): try it again.
			p.mu.Lock()
			p.seen = seen
			p.mu.Unlock()
		}
	}
	return err
}

// currentDevice is the device the client certificate names now.
func (p *Poller) currentDevice() string {
	if p.opts.DeviceID == nil {
		return ""
	}
	return p.opts.DeviceID()
}

// checkDevice notices a new enrollment before a poll: the generations
// and jobs seen are the old device's, so they are forgotten, and the
// config running becomes foreign (kept until the new device's arrives).
// p.mu is held.
func (p *Poller) checkDevice() {
	cur := p.currentDevice()
	if cur == p.device {
		return
	}
	if p.device != "" {
		p.log.Info("enrolled as another device: asking for its config; the captures running keep running until it comes",
			"device_id", cur, "previous_device_id", p.device)
	}
	p.device, p.seen, p.jobsSeq = cur, -1, 0
}

// ownApplied reports whether a config runs and is the current device's
// (not one of the device the agent was enrolled as before). p.mu is held.
func (p *Poller) ownApplied() bool {
	return p.applied != nil && p.applied.DeviceID == p.device
}

// offerJobs hands the answer's jobs to the job runner and remembers its
// jobs sequence number. Each job is read on its own: one the poller
// cannot read is logged and left out.
func (p *Poller) offerJobs(c *Config) {
	if p.opts.Jobs == nil {
		return
	}
	p.mu.Lock()
	p.jobsSeq = max(p.jobsSeq, c.JobsSeq)
	p.mu.Unlock()
	raw := bytes.TrimSpace(c.Jobs)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		if c.JobsSeq > 0 {
			p.opts.Jobs.Offer([]jobapi.AgentJob{})
		}
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		p.log.Error("the console's jobs are not a list: none taken from this answer", "jobs_seq", c.JobsSeq, "error", err)
		return
	}
	jobs := make([]jobapi.AgentJob, 0, len(items))
	for i, it := range items {
		var j jobapi.AgentJob
		if err := json.Unmarshal(it, &j); err != nil || j.ID <= 0 {
			p.log.Error("a job from the console cannot be read: it is left out", "jobs_seq", c.JobsSeq, "index", i, "job", short(it), "error", err)
			continue
		}
		jobs = append(jobs, j)
	}
	p.opts.Jobs.Offer(jobs)
}

func (p *Poller) contact() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		p.log.Info("console reachable again", "console", p.base.String(), "after_failures", p.failures)
	}
	p.lastContact, p.lastErr, p.failures, p.retryAt = time.Now(), "", 0, time.Time{}
}

// failed records a failure and returns the backoff before the next
// attempt.
func (p *Poller) failed(err error) time.Duration {
	p.noteRefused(err)
	p.mu.Lock()
	p.failures++
	n := p.failures
	d := p.backoff(n)
	p.lastErr, p.retryAt = oneLine(err), time.Now().Add(d)
	p.mu.Unlock()
	lv := slog.LevelWarn
	if n > 1 && n%10 != 0 {
		lv = slog.LevelDebug // the first failure and every tenth
	}
	p.log.Log(context.Background(), lv, "console poll failed: the captures keep running with the last applied config",
		"console", p.base.String(), "error", oneLine(err), "failures", n, "retry_in", d.Round(time.Millisecond))
	return d
}

// noteRefused tells OnRefused about a 401 or 403 answer.
func (p *Poller) noteRefused(err error) {
	var ae *APIError
	if p.opts.OnRefused != nil && errors.As(err, &ae) &&
		(ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden) {
		p.opts.OnRefused(oneLine(err))
	}
}

// backoff is BackoffMin·2^(n-1), capped at BackoffMax, plus up to a
// quarter of it at random, still capped: within [BackoffMin, BackoffMax].
func (p *Poller) backoff(n int) time.Duration {
	d := p.opts.BackoffMin
	for i := 1; i < n && d < p.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.opts.BackoffMax)
	d += time.Duration(p.opts.Jitter() * 0.25 * float64(d))
	return min(d, p.opts.BackoffMax)
}

// readBody reads at most MaxResponseSize bytes of resp.
func readBody(resp *http.Response) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the console's answer: %w", err)
	}
	if len(raw) > MaxResponseSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", errGarbage, MaxResponseSize)
	}
	return raw, nil
}

// APIError is a non-2xx answer of the console.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("console answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("console answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

func apiError(code int, raw []byte) error {
	var er struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		msg = er.Error
	} else {
		msg = short(raw)
	}
	return &APIError{StatusCode: code, Message: msg}
}

func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// oneLine joins a multi-line error into one line for logs and heartbeats.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func oneLineString(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
