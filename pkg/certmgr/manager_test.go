package certmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
	"github.com/ringtap/ringtap/pkg/console/pki"
)

// runManager runs m.Run until the test ends, then checks that it returned
// nil. The channel it returns is closed when Run returns.
func runManager(t *testing.T, m *Manager) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	done := make(chan struct{})
	go func() {
		err = m.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return done
}

func mustManager(t *testing.T, dir string, opts Options) *Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = (&logBuffer{}).logger()
	}
	m, err := New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newClient with keep-alives off: every request is a new handshake.
func handshakeClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// TestRenewHotSwap: after a renewal, the next handshake made with the
// tls.Config taken before it presents the new certificate.
func TestRenewHotSwap(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	m := mustManager(t, dir, Options{})
	client := handshakeClient(m.TLSConfig()) // taken once, before the renewal
	before, code := whoami(t, fc.url, client)
	if code != http.StatusOK {
		t.Fatalf("whoami = %d %s", code, before)
	}
	oldCert, key := m.Certificate(), m.key()
	if err := m.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, code := whoami(t, fc.url, client)
	if code != http.StatusOK || after == before || !strings.HasPrefix(after, "dev-1 ") {
		t.Fatalf("after renewal the handshake presented %q (%d), before %q", after, code, before)
	}
	cur := m.Certificate()
	if !key.PublicKey.Equal(cur.PublicKey) || m.key() != key {
		t.Error("renewal changed the key")
	}
	if cur.Equal(oldCert) || !strings.HasSuffix(after, cur.SerialNumber.Text(16)) {
		t.Error("the new certificate is not the one presented")
	}
	onDisk, err := readCert(filepath.Join(dir, CertFile))
	if err != nil || !onDisk.Equal(cur) || fileMode(t, filepath.Join(dir, CertFile)) != 0o600 {
		t.Errorf("%s is not the renewed certificate with mode 0600 (%v)", CertFile, err)
	}
	if s := m.Status(); s.LastRenewal.IsZero() || s.LastError != "" || !s.Ready || !s.NotAfter.Equal(cur.NotAfter) {
		t.Errorf("status %+v", s)
	}
	// A restart loads the renewed certificate.
	if m2 := mustManager(t, dir, Options{}); !m2.Certificate().Equal(cur) {
		t.Error("a new Manager loaded another certificate")
	}
}

// TestRenewOtherKey: the console refuses a renewal CSR for another key
// than the certificate the connection presented (ErrKeyMismatch, 403).
func TestRenewOtherKey(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	m := mustManager(t, dir, Options{})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := newCSR(other, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	client := handshakeClient(m.TLSConfig())
	var resp RenewResponse
	err = postJSON(context.Background(), client, fc.url+RenewPath, RenewRequest{CSR: csr}, &resp)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || !strings.Contains(apiErr.Message, pki.ErrKeyMismatch.Error()) {
		t.Fatalf("renewal with another key: %v, want 403 %q", err, pki.ErrKeyMismatch)
	}
	if _, renewals := fc.stats(); renewals != 0 {
		t.Errorf("%d certificates issued", renewals)
	}
	// Without a client certificate, renewal is refused too.
	plain := handshakeClient(pinnedTLSConfig(fc.ca.Cert, fc.fingerprint(), nil))
	mine, _ := newCSR(m.key(), "dev-1")
	if err := postJSON(context.Background(), plain, fc.url+RenewPath, RenewRequest{CSR: mine}, &resp); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("renewal without a certificate: %v, want 401", err)
	}
}

// TestExpiredClientCert: a server with pki's ServerTLSConfig rejects an
// expired client certificate, and the Manager does not present one.
func TestExpiredClientCert(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	mustExpire(t, fc, dir)

	st, _ := loadState(dir)
	raw := handshakeClient(pinnedTLSConfig(st.ca, fc.fingerprint(), func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &tls.Certificate{Certificate: [][]byte{st.cert.Raw}, PrivateKey: st.key}, nil
	}))
	if got, code := whoami(t, fc.url, raw); code != 0 || !strings.Contains(got, "certificate") {
		t.Errorf("expired certificate presented: %d %s, want a failed handshake", code, got)
	}
	m := mustManager(t, dir, Options{})
	if got, code := whoami(t, fc.url, handshakeClient(m.TLSConfig())); code != http.StatusUnauthorized {
		t.Errorf("manager with an expired certificate: %d %s, want 401 (no certificate presented)", code, got)
	}
	if err := m.Renew(context.Background()); err == nil || !strings.Contains(err.Error(), "ringtap agent enroll") {
		t.Errorf("Renew with an expired certificate: %v", err)
	}
	if _, renewals := fc.stats(); renewals != 0 {
		t.Error("an expired certificate was renewed")
	}
}

// mustExpire replaces the certificate in dir with an expired one for the
// same key and device.
func mustExpire(t *testing.T, fc *fakeConsole, dir string) {
	t.Helper()
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := newCSR(st.key, st.deviceID)
	csr, _ := pki.ParseCSR([]byte(csrPEM))
	old, err := fc.ca.SignCSR(csr, st.deviceID, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CertFile), pki.EncodeCertPEM(old), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredAtStart: the certificate expired while the agent was down.
// New does not fail, Run does not fail or panic, the status asks for
// re-enrollment, and a re-enrollment while it runs is picked up.
func TestExpiredAtStart(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	mustExpire(t, fc, dir)
	logs := &logBuffer{}
	m := mustManager(t, dir, Options{Logger: logs.logger(), ReloadInterval: 20 * time.Millisecond})
	s := m.Status()
	if !s.Expired || !s.NeedsReenroll || s.Ready || !strings.Contains(s.Reason, "ringtap agent enroll") {
		t.Errorf("status %+v", s)
	}
	if ok, reason := m.Ready(); ok || reason != s.Reason {
		t.Errorf("Ready = %v, %q", ok, reason)
	}
	if !strings.Contains(logs.String(), "ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256") {
		t.Errorf("no re-enrollment hint in the log:\n%s", logs)
	}
	var metrics strings.Builder
	m.WriteMetrics(&metrics)
	if !strings.Contains(metrics.String(), "ringtap_certmgr_needs_reenroll 1\n") || !strings.Contains(metrics.String(), "ringtap_certmgr_ready 0\n") {
		t.Errorf("metrics:\n%s", metrics.String())
	}

	done := runManager(t, m)
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("Run returned early")
	default:
	}

	mustEnroll(t, fc, dir) // `ringtap agent enroll` while the agent runs
	deadline := time.Now().Add(10 * time.Second)
	for !m.Status().Ready {
		if time.Now().After(deadline) {
			t.Fatalf("the new enrollment was not picked up: %+v", m.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, code := whoami(t, fc.url, handshakeClient(m.TLSConfig())); code != http.StatusOK {
		t.Errorf("after re-enrollment: %d %s", code, got)
	}
}

// TestRenewalTime: renewal is due 2/3 into the certificate's life, ±10%
// of that.
func TestRenewalTime(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	life := 30 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		u    float64 // the jitter draw
		f    float64 // the fraction of the life it gives
	}{
		{"earliest", 0, 0.6},
		{"quarter", 0.25, 0.6333333},
		{"middle", 0.5, 2.0 / 3},
		{"latest", 1, 0.7333333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renewalTime(t0, t0.Add(life), tc.u).Sub(t0)
			want := time.Duration(tc.f * float64(life))
			if d := got - want; d < -time.Second || d > time.Second {
				t.Errorf("renewal after %s, want %s", got, want)
			}
		})
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestReadiness: with an injected clock, readiness stays true while
// renewal fails early in the life, goes false at 90% of it, and the
// status says expired after NotAfter; backoff grows and is capped.
func TestReadiness(t *testing.T) {
	fc := newFakeConsole(t, 30*24*time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	fc.mu.Lock()
	fc.failRenew = 1000
	fc.mu.Unlock()
	st, _ := loadState(dir)
	clock := &fakeClock{now: st.certMod}
	m := mustManager(t, dir, Options{Now: clock.Now, Jitter: func() float64 { return 0.5 }, RetryMin: time.Second, RetryMax: 8 * time.Second})
	obtained, notAfter := m.obtained, m.Certificate().NotAfter
	life := notAfter.Sub(obtained)
	at := func(f float64) time.Time { return obtained.Add(time.Duration(f * float64(life))) }

	if s := m.Status(); !s.RenewAt.Equal(renewalTime(obtained, notAfter, 0.5)) || !s.Ready {
		t.Fatalf("fresh: %+v", s)
	}
	if d := m.nextAttempt(); d < life*2/3-time.Second || d > life*2/3+time.Second {
		t.Errorf("first attempt in %s, want 2/3 of %s", d, life)
	}
	clock.set(at(0.7))
	var waits []time.Duration
	for range 5 {
		if err := m.Renew(context.Background()); err == nil {
			t.Fatal("renewal succeeded against a failing console")
		}
		waits = append(waits, m.nextAttempt())
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if waits[i] > want || waits[i] < want*8/10 {
			t.Errorf("backoff %d = %s, want %s less up to 20%%", i+1, waits[i], want)
		}
	}
	s := m.Status()
	if !s.Ready || s.Failures != 5 || !strings.Contains(s.LastError, "database unavailable") || s.NeedsReenroll {
		t.Errorf("at 70%% with failures: %+v", s)
	}
	clock.set(at(0.91))
	if s := m.Status(); s.Ready || !strings.Contains(s.Reason, "renewal has not succeeded") || !strings.Contains(s.Reason, "database unavailable") {
		t.Errorf("at 91%%: %+v", s)
	}
	clock.set(notAfter.Add(-time.Millisecond))
	if d := m.nextAttempt(); d > time.Millisecond {
		t.Errorf("the wait runs past expiry: %s", d)
	}
	clock.set(notAfter.Add(time.Second))
	if s := m.Status(); s.Ready || !s.Expired || !s.NeedsReenroll {
		t.Errorf("after expiry: %+v", s)
	}

	// A refusal (revoked device) asks for re-enrollment at once.
	clock.set(at(0.7))
	fc.mu.Lock()
	fc.refuseRenew = true
	fc.mu.Unlock()
	_ = m.Renew(context.Background())
	if s := m.Status(); s.Ready || !s.NeedsReenroll || !strings.Contains(s.Reason, "device revoked") {
		t.Errorf("refused: %+v", s)
	}
}

// TestAutoRenewal: with 3s certificates, Run renews at about two thirds
// of the life, retries a failing console with backoff, and keeps the
// certificate valid throughout.
func TestAutoRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 4s")
	}
	const life = 3 * time.Second
	fc := newFakeConsole(t, life)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	fc.mu.Lock()
	fc.failRenew = 2
	fc.mu.Unlock()
	m := mustManager(t, dir, Options{RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	first := m.Certificate()
	m.mu.Lock()
	obtained := m.obtained
	m.mu.Unlock()
	client := handshakeClient(m.TLSConfig())

	runManager(t, m)
	deadline := time.Now().Add(2 * life)
	for m.Certificate().Equal(first) {
		if time.Now().After(deadline) {
			t.Fatalf("not renewed: %+v", m.Status())
		}
		if got, code := whoami(t, fc.url, client); code != http.StatusOK {
			t.Fatalf("before renewal: %d %s", code, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := m.Status()
	renewedAfter := s.LastRenewal.Sub(obtained)
	// NotAfter has a resolution of a second, so the certificate's real
	// life from receipt is between life-1s and life: judge against it.
	real := first.NotAfter.Sub(obtained)
	if renewedAfter < real*55/100 || !s.LastRenewal.Before(first.NotAfter) {
		t.Errorf("renewed %s after it was obtained, want about 2/3 of its %s life (0.6 with jitter, then the retries) and before expiry", renewedAfter, real)
	}
	if s.LastError != "" || s.Failures != 0 || !s.Ready {
		t.Errorf("after renewal: %+v", s)
	}
	fc.mu.Lock()
	left := fc.failRenew
	fc.mu.Unlock()
	if left != 0 {
		t.Errorf("%d failing renewals not retried", left)
	}
	if got, code := whoami(t, fc.url, client); code != http.StatusOK || !strings.HasSuffix(got, m.Certificate().SerialNumber.Text(16)) {
		t.Errorf("after renewal: %d %s", code, got)
	}
}

func TestNotEnrolled(t *testing.T) {
	if _, err := New(t.TempDir(), Options{}); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("New on an empty dir: %v, want ErrNotEnrolled", err)
	}
}

func TestMetricsTable(t *testing.T) {
	table := MetricsTable()
	for _, name := range []string{"ringtap_certmgr_renewals_total", "ringtap_certmgr_ready", "ringtap_certmgr_cert_expiry_timestamp_seconds"} {
		if !strings.Contains(table, name) {
			t.Errorf("%s missing from the table", name)
		}
	}
}

// TestNoVerificationSkipped: no Go file of the repository names the
// tls.Config field that turns certificate verification off, this one
// included (hence the split string).
func TestNoVerificationSkipped(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	needle := []byte("Insecure" + "SkipVerify")
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), string(needle)) {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s mentions %s", rel, needle)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files under %s", files, root)
	}
}

// TestRefusedElsewhere: the poller's 401/403 (Refused) asks for
// re-enrollment at once, in Status, Ready and the metrics, and a new
// certificate (here a renewal) clears it.
func TestRefusedElsewhere(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	logs := &logBuffer{}
	m := mustManager(t, dir, Options{Logger: logs.logger()})
	if s := m.Status(); !s.Ready || s.NeedsReenroll {
		t.Fatalf("fresh: %+v", s)
	}
	m.Refused("console answered 403 Forbidden: device dev-1 is revoked")
	m.Refused("console answered 403 Forbidden: device dev-1 is revoked")
	s := m.Status()
	if s.Ready || !s.NeedsReenroll || s.Expired || !strings.Contains(s.Reason, "device dev-1 is revoked") || !strings.Contains(s.Reason, "ringtap agent enroll") {
		t.Errorf("after Refused: %+v", s)
	}
	if ok, why := m.Ready(); ok || why == "" {
		t.Errorf("Ready() = %v %q after Refused", ok, why)
	}
	var metrics strings.Builder
	m.WriteMetrics(&metrics)
	if !strings.Contains(metrics.String(), "ringtap_certmgr_needs_reenroll 1") {
		t.Errorf("metrics after Refused:\n%s", metrics.String())
	}
	if n := strings.Count(logs.String(), "refuses this agent's certificate"); n != 1 {
		t.Errorf("logged the refusal %d times, want once:\n%s", n, logs.String())
	}
	if err := m.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); !s.Ready || s.NeedsReenroll {
		t.Errorf("after a new certificate: %+v", s)
	}
}
