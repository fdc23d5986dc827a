package certmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
	"github.com/ringtap/ringtap/pkg/console/pki"
)

// The renewal policy, as fractions of a certificate's life counted from
// when the agent obtained it.
const (
	// RenewFraction is when renewal starts: two thirds into the life, with
	// a jitter of ±RenewJitter of that point, so that a fleet enrolled at
	// once does not renew at once.
	RenewFraction = 2.0 / 3.0
	RenewJitter   = 0.10
	// UnreadyFraction is when a renewal that has kept failing makes the
	// agent not ready: 90% into the life.
	UnreadyFraction = 0.90
)

// reenrollHint is the end of every message that asks for re-enrollment.
const reenrollHint = "run `ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256` with a new install key"

// Options configure a Manager. Zero values take the defaults in their
// comments.
type Options struct {
	Logger *slog.Logger // slog.Default()
	// Now is the clock (time.Now); Jitter returns a uniform number in
	// [0, 1) (math/rand/v2.Float64). Tests replace them.
	Now    func() time.Time
	Jitter func() float64
	// RetryMin and RetryMax bound the exponential backoff between failed
	// renewals: 10s and 10m.
	RetryMin, RetryMax time.Duration
	// ReloadInterval is how often the state directory is checked for a
	// certificate written by someone else (`ringtap agent enroll` while
	// the agent runs): 2s. A check is one stat of the certificate file.
	ReloadInterval time.Duration
	// RequestTimeout bounds one renewal request: 30s.
	RequestTimeout time.Duration
}

// Status is the certificate manager's state, for /status.json, /readyz
// and metrics.
type Status struct {
	DeviceID   string    `json:"device_id"`
	ConsoleURL string    `json:"console_url"`
	NotAfter   time.Time `json:"not_after"`
	// RenewAt is when the next renewal is due (the first attempt; after a
	// failure, retries follow with backoff).
	RenewAt     time.Time `json:"renew_at"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	// LastError is the last renewal failure, cleared by a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Failures counts the renewal failures since the last success.
	Failures int  `json:"failures"`
	Expired  bool `json:"expired"`
	// NeedsReenroll is true when renewal cannot succeed any more: the
	// certificate expired, or the console refused it (401/403, e.g. a
	// revoked device).
	NeedsReenroll bool `json:"needs_reenroll"`
	// Ready is false when NeedsReenroll, or when renewal is still failing
	// 90% into the certificate's life; Reason says why.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// Manager holds the device's key and certificate, renews the certificate
// before it expires, and gives the agent's console clients a tls.Config
// that always presents the current one. It is a Component: Run renews.
type Manager struct {
	dir  string
	opts Options
	log  *slog.Logger

	renewMu sync.Mutex // one renewal at a time

	mu          sync.Mutex
	st          *state
	tlsCert     *tls.Certificate
	obtained    time.Time // when the agent obtained st.cert
	renewAt     time.Time
	lastRenewal time.Time
	lastErr     string
	lastErrAt   time.Time
	failures    int
	refused     bool
	renewals    uint64
	failuresAll uint64
	expiryShown bool // the re-enrollment message was logged for st.cert
	// epoch counts the enrollments loaded from the state directory while
	// running (not renewals): Transport starts over when it changes, and
	// enrolled is closed (and replaced) then, to wake who waits on it.
	epoch    uint64
	enrolled chan struct{}
	// movedFrom is the console URL the agent's components were started
	// with, when a new enrollment names another one: they keep their URL
	// until the agent restarts, and Status says so.
	movedFrom string

	client *http.Client
}

// New loads the enrollment in stateDir (DefaultStateDir when empty). It
// returns ErrNotEnrolled when there is none, ErrBadState when its files
// do not fit together. An expired certificate is not an error: the
// Manager reports NeedsReenroll and logs what to do.
func New(stateDir string, opts Options) (*Manager, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 10 * time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Minute
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = 2 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{dir: stateDir, opts: opts, log: opts.Logger, enrolled: make(chan struct{})}
	m.install(st, st.certMod)
	m.client = newClient(m.TLSConfig())
	m.checkExpiry()
	return m, nil
}

// install makes st the current state, obtained at the given time (capped
// to the certificate's validity and to now). Callers hold no lock.
func (m *Manager) install(st *state, obtained time.Time) {
	now := m.opts.Now()
	obtained = maxTime(obtained, st.cert.NotBefore)
	if obtained.After(now) {
		obtained = maxTime(now, st.cert.NotBefore)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = st
	m.tlsCert = &tls.Certificate{Certificate: [][]byte{st.cert.Raw}, PrivateKey: st.key, Leaf: st.cert}
	m.obtained = obtained
	m.renewAt = renewalTime(obtained, st.cert.NotAfter, m.opts.Jitter())
	m.failures, m.refused, m.expiryShown = 0, false, false
}

// Refused records that the console refused the current certificate on a
// request of another component (the poller's 401 or 403: a revoked
// device, a certificate the console no longer accepts). Renewal cannot
// help then, so Status reports NeedsReenroll (and Ready false) until a
// new certificate is installed: a renewal that succeeds, or a new
// enrollment in the state directory. The captures are not touched.
func (m *Manager) Refused(reason string) {
	m.mu.Lock()
	was := m.refused
	m.refused, m.lastErr, m.lastErrAt = true, reason, m.opts.Now()
	m.mu.Unlock()
	if !was {
		m.log.Error("the console refuses this agent's certificate; the captures keep running with the last applied config: "+reenrollHint, "reason", reason)
	}
}

// renewalTime is when to renew a certificate obtained at obtained and
// valid until notAfter: RenewFraction into that span, moved by
// ±RenewJitter of it, where u in [0, 1) picks the point.
func renewalTime(obtained, notAfter time.Time, u float64) time.Time {
	life := notAfter.Sub(obtained)
	f := RenewFraction * (1 + RenewJitter*(2*u-1))
	return obtained.Add(time.Duration(float64(life) * f))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TLSConfig returns a client tls.Config for the console: TLS 1.3, the
// pinned CA as the only root (and the fingerprint checked again), and
// GetClientCertificate presenting the current certificate, so that every
// new connection uses the latest renewal without rebuilding anything. An
// expired certificate is not presented at all (the console answers 401
// instead of failing the handshake). Connections kept alive from before a
// renewal stay on the certificate they were made with; it is still
// valid.
func (m *Manager) TLSConfig() *tls.Config {
	m.mu.Lock()
	ca, pin := m.st.ca, m.st.console.CAFingerprint
	m.mu.Unlock()
	return pinnedTLSConfig(ca, pin, m.getClientCertificate)
}

func (m *Manager) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.opts.Now().Before(m.st.cert.NotAfter) {
		return &tls.Certificate{}, nil // none
	}
	return m.tlsCert, nil
}

// ConsoleURL returns the URL of the console the agent is enrolled with.
func (m *Manager) ConsoleURL() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.console.URL
}

// DeviceID returns the device id of the current certificate.
func (m *Manager) DeviceID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.deviceID
}

// Certificate returns the current certificate.
func (m *Manager) Certificate() *x509.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.cert
}

// Status returns the manager's state now.
func (m *Manager) Status() Status {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		DeviceID:    m.st.deviceID,
		ConsoleURL:  m.st.console.URL,
		NotAfter:    m.st.cert.NotAfter,
		RenewAt:     m.renewAt,
		LastRenewal: m.lastRenewal,
		LastError:   m.lastErr,
		LastErrorAt: m.lastErrAt,
		Failures:    m.failures,
		Expired:     !now.Before(m.st.cert.NotAfter),
	}
	s.NeedsReenroll = s.Expired || m.refused
	unready := m.obtained.Add(time.Duration(float64(m.st.cert.NotAfter.Sub(m.obtained)) * UnreadyFraction))
	switch {
	case m.movedFrom != "":
		s.Reason = fmt.Sprintf("enrolled with the console at %s while running, but the agent still asks %s: restart it to reach the new one", m.st.console.URL, m.movedFrom)
	case s.Expired:
		s.Reason = fmt.Sprintf("client certificate expired at %s: %s", s.NotAfter.UTC().Format(time.RFC3339), reenrollHint)
	case m.refused:
		s.Reason = fmt.Sprintf("the console refused the client certificate (%s): %s", m.lastErr, reenrollHint)
	case !now.Before(unready):
		s.Reason = fmt.Sprintf("client certificate expires at %s and renewal has not succeeded", s.NotAfter.UTC().Format(time.RFC3339))
		if m.lastErr != "" {
			s.Reason += ": " + m.lastErr
		}
	}
	s.Ready = s.Reason == ""
	return s
}

// Ready reports whether the certificate is usable and renewal on track,
// and why not, for /readyz.
func (m *Manager) Ready() (bool, string) {
	s := m.Status()
	return s.Ready, s.Reason
}

// checkExpiry logs, once per certificate, that it has expired and what to
// do. It returns whether it has.
func (m *Manager) checkExpiry() bool {
	now := m.opts.Now()
	m.mu.Lock()
	expired := !now.Before(m.st.cert.NotAfter)
	show := expired && !m.expiryShown
	m.expiryShown = m.expiryShown || expired
	notAfter, id := m.st.cert.NotAfter, m.st.deviceID
	m.mu.Unlock()
	if show {
		m.log.Error("client certificate expired; the agent keeps capturing with its last config but cannot reach the console until re-enrolled: "+reenrollHint,
			"device_id", id, "not_after", notAfter, "state_dir", m.dir)
	}
	return expired
}

// Run renews the certificate when due and retries failures with backoff
// until ctx is done. With an expired certificate it only waits for a new
// enrollment to appear in the state directory. It returns nil when ctx is
// done.
func (m *Manager) Run(ctx context.Context) error {
	defer m.client.CloseIdleConnections()
	reload := time.NewTicker(m.opts.ReloadInterval)
	defer reload.Stop()
	for {
		var due <-chan time.Time
		var timer *time.Timer
		if !m.checkExpiry() {
			timer = time.NewTimer(m.nextAttempt())
			due = timer.C
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return nil
		case <-reload.C:
			stopTimer(timer)
			m.reloadIfChanged()
			continue
		case <-due:
		}
		if m.checkExpiry() {
			continue
		}
		_ = m.Renew(ctx) // recorded in Status and logged
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// nextAttempt is how long to wait before the next renewal attempt: until
// renewAt, or after failures the backoff, but never past expiry (so Run
// wakes up to report it).
func (m *Manager) nextAttempt() time.Duration {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.renewAt.Sub(now)
	if m.failures > 0 {
		b := m.opts.RetryMin
		for i := 1; i < m.failures && b < m.opts.RetryMax; i++ {
			b *= 2
		}
		b = min(b, m.opts.RetryMax)
		b -= time.Duration(m.opts.Jitter() * 0.2 * float64(b))
		d = max(d, b)
	}
	if left := m.st.cert.NotAfter.Sub(now); d > left {
		d = left
	}
	return max(d, 0)
}

// Renew renews the certificate now: a CSR for the current key, POSTed to
// RenewPath over mTLS with the current certificate. The new certificate
// is checked (same key, same device, signed by the pinned CA), written to
// CertFile and presented by new connections from then on. A failure is
// recorded in Status, logged, and returned.
func (m *Manager) Renew(ctx context.Context) error {
	m.renewMu.Lock()
	defer m.renewMu.Unlock()
	err := m.renew(ctx)
	if err != nil && ctx.Err() != nil {
		return err // stopping: not a renewal failure
	}
	now := m.opts.Now()
	m.mu.Lock()
	if err != nil {
		var apiErr *APIError
		m.failures++
		m.failuresAll++
		m.lastErr, m.lastErrAt = err.Error(), now
		m.refused = errors.As(err, &apiErr) && apiErr.Refused()
		failures, notAfter := m.failures, m.st.cert.NotAfter
		m.mu.Unlock()
		m.log.Warn("client certificate renewal failed; retrying with backoff", "err", err,
			"failures", failures, "not_after", notAfter)
		return err
	}
	m.lastRenewal, m.lastErr, m.lastErrAt = now, "", time.Time{}
	m.renewals++
	notAfter, renewAt := m.st.cert.NotAfter, m.renewAt
	m.mu.Unlock()
	m.client.CloseIdleConnections() // the manager's next request uses the new certificate
	m.log.Info("client certificate renewed", "device_id", m.DeviceID(), "not_after", notAfter, "next_renewal", renewAt)
	return nil
}

func (m *Manager) renew(ctx context.Context) error {
	m.mu.Lock()
	cur := m.st
	m.mu.Unlock()
	if !m.opts.Now().Before(cur.cert.NotAfter) {
		return fmt.Errorf("renew: client certificate expired at %s: %s", cur.cert.NotAfter.UTC().Format(time.RFC3339), reenrollHint)
	}
	csr, err := newCSR(cur.key, cur.deviceID)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
	defer cancel()
	u, err := parseConsoleURL(cur.console.URL)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	var resp RenewResponse
	if err := postJSON(ctx, m.client, u.JoinPath(RenewPath).String(), RenewRequest{CSR: csr}, &resp); err != nil {
		return fmt.Errorf("renew with %s: %w", cur.console.URL, err)
	}
	now := m.opts.Now()
	cert, err := checkIssued(resp.Certificate, cur.ca, cur.key, now)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if id, _ := pki.DeviceID(cert); id != cur.deviceID {
		return fmt.Errorf("renew: %w: the certificate names device %q, not %q", ErrBadResponse, id, cur.deviceID)
	}
	path := filepath.Join(m.dir, CertFile)
	if err := atomicfile.Write(path, pki.EncodeCertPEM(cert), 0o600); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	next := *cur
	next.cert = cert
	if fi, err := os.Stat(path); err == nil {
		next.certMod = fi.ModTime()
	}
	m.install(&next, now)
	return nil
}

// reloadIfChanged loads the state directory again when CertFile is not
// the one in use (a new enrollment), and switches to it if it loads.
func (m *Manager) reloadIfChanged() {
	fi, err := os.Stat(filepath.Join(m.dir, CertFile))
	if err != nil {
		return
	}
	m.mu.Lock()
	same := fi.ModTime().Equal(m.st.certMod)
	m.mu.Unlock()
	if same {
		return
	}
	m.renewMu.Lock()
	defer m.renewMu.Unlock()
	st, err := loadState(m.dir)
	if err != nil {
		m.log.Warn("state directory changed but does not load; keeping the current certificate", "err", err)
		return
	}
	m.mu.Lock()
	if st.cert.Equal(m.st.cert) {
		m.st.certMod = st.certMod
		m.mu.Unlock()
		return
	}
	caChanged := !st.ca.Equal(m.st.ca)
	started := m.st.console.URL
	if m.movedFrom != "" {
		started = m.movedFrom
	}
	m.mu.Unlock()
	m.install(st, st.certMod)
	m.mu.Lock()
	m.epoch++
	close(m.enrolled)
	m.enrolled = make(chan struct{})
	m.movedFrom = ""
	if st.console.URL != started {
		m.movedFrom = started
	}
	moved := m.movedFrom
	m.mu.Unlock()
	m.client.CloseIdleConnections()
	if caChanged { // enrolled with another console
		m.client = newClient(m.TLSConfig())
	}
	m.log.Info("loaded a new enrollment from the state directory", "device_id", st.deviceID,
		"console", st.console.URL, "not_after", st.cert.NotAfter)
	if moved != "" {
		m.log.Error("the new enrollment is with another console: restart the agent to reach it; until then it keeps asking the one it started with",
			"console", st.console.URL, "started_with", moved)
	}
}

// enrollmentEpoch counts the enrollments loaded while running.
func (m *Manager) enrollmentEpoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch
}

// Enrolled returns a channel that is closed when a new enrollment is
// loaded from the state directory: who backs off after the console
// refused the old certificate can try again at once. Call it again for
// the next one.
func (m *Manager) Enrolled() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enrolled
}

// key returns the current private key (for tests).
func (m *Manager) key() *ecdsa.PrivateKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.key
}
