package poller

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/agent"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/pcapmgr"
)

// ---- a fake console: the agent API's config and heartbeat endpoints ----

type fakeConsole struct {
	t   *testing.T
	ca  *pki.CA
	url string

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	gen        int64
	captures   string   // JSON list
	raw        string   // when not "", answered as is with 200 instead of a config
	status     int      // when not 0, answered with this status
	hbStatus   int      // when not 0, heartbeats are answered with this status
	hbRefused  int      // heartbeats answered with hbStatus
	requests   []string // the config requests' queries
	reqTimes   []time.Time
	heartbeats []Heartbeat
	hbErrs     []error
	devices    []string
	jobsSeq    int64
	jobs       string // JSON list; "" leaves jobs out of the answer
}

func newFakeConsole(t *testing.T) *fakeConsole {
	t.Helper()
	ca, err := pki.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.ServerCert(pki.ServerCertConfig{Dir: t.TempDir(), Name: "agent-api", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeConsole{t: t, ca: ca, changed: make(chan struct{}), gen: 0, captures: "[]"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fc.handler(), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(l, pki.ServerTLSConfig(sc, pki.AgentListener, nil))) }()
	t.Cleanup(func() { _ = srv.Close() })
	fc.url = "https://" + l.Addr().String()
	return fc
}

// set stores a new desired config.
func (fc *fakeConsole) set(gen int64, captures string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.gen, fc.captures, fc.raw, fc.status = gen, captures, "", 0
	close(fc.changed)
	fc.changed = make(chan struct{})
}

// setJobs stores the device's jobs at a new sequence number.
func (fc *fakeConsole) setJobs(seq int64, jobs string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.jobsSeq, fc.jobs = seq, jobs
	close(fc.changed)
	fc.changed = make(chan struct{})
}

// answer makes every config request answer raw with 200 (garbage), or
// with status when raw is "".
func (fc *fakeConsole) answer(status int, raw string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.status, fc.raw = status, raw
	close(fc.changed)
	fc.changed = make(chan struct{})
}

func (fc *fakeConsole) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ConfigPath, func(w http.ResponseWriter, r *http.Request) {
		id, _, err := pki.DeviceFromConn(r.TLS, time.Now())
		if err != nil {
			http.Error(w, `{"error":"no client certificate"}`, http.StatusUnauthorized)
			return
		}
		wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
		if err != nil {
			http.Error(w, `{"error":"bad wait"}`, http.StatusBadRequest)
			return
		}
		after := int64(-1)
		if s := r.URL.Query().Get("after"); s != "" {
			if after, err = strconv.ParseInt(s, 10, 64); err != nil {
				http.Error(w, `{"error":"bad after"}`, http.StatusBadRequest)
				return
			}
		}
		jobsAfter := int64(1 << 62) // no jobs= : do not wait on jobs
		if s := r.URL.Query().Get("jobs"); s != "" {
			if jobsAfter, err = strconv.ParseInt(s, 10, 64); err != nil {
				http.Error(w, `{"error":"bad jobs"}`, http.StatusBadRequest)
				return
			}
		}
		fc.mu.Lock()
		fc.requests = append(fc.requests, r.URL.RawQuery)
		fc.reqTimes = append(fc.reqTimes, time.Now())
		fc.devices = append(fc.devices, id)
		fc.mu.Unlock()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			fc.mu.Lock()
			status, raw, gen, caps, changed := fc.status, fc.raw, fc.gen, fc.captures, fc.changed
			jobsSeq, jobs := fc.jobsSeq, fc.jobs
			fc.mu.Unlock()
			switch {
			case raw != "":
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, raw)
				return
			case status != 0:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"error":"the console is unwell"}`)
				return
			case gen > after || jobsSeq > jobsAfter:
				w.Header().Set("Content-Type", "application/json")
				if jobs == "" {
					fmt.Fprintf(w, `{"generation":%d,"captures":%s,"updated_at":"2026-01-01T00:00:00Z"}`, gen, caps)
				} else {
					fmt.Fprintf(w, `{"generation":%d,"captures":%s,"updated_at":"2026-01-01T00:00:00Z","jobs_seq":%d,"jobs":%s}`, gen, caps, jobsSeq, jobs)
				}
				return
			}
			select {
			case <-changed:
			case <-timer.C:
				w.WriteHeader(http.StatusNotModified)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST "+HeartbeatPath, func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := pki.DeviceFromConn(r.TLS, time.Now()); err != nil {
			http.Error(w, `{"error":"no client certificate"}`, http.StatusUnauthorized)
			return
		}
		fc.mu.Lock()
		hbStatus := fc.hbStatus
		fc.mu.Unlock()
		if hbStatus != 0 {
			fc.mu.Lock()
			fc.hbRefused++
			fc.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(hbStatus)
			_, _ = io.WriteString(w, `{"error":"device revoked"}`)
			return
		}
		// As the console: unknown fields are rejected.
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		var hb Heartbeat
		err := dec.Decode(&hb)
		fc.mu.Lock()
		if err != nil {
			fc.hbErrs = append(fc.hbErrs, err)
		} else {
			fc.heartbeats = append(fc.heartbeats, hb)
		}
		fc.mu.Unlock()
		if err != nil {
			http.Error(w, `{"error":"bad heartbeat"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (fc *fakeConsole) configRequests() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]string(nil), fc.requests...)
}

func (fc *fakeConsole) lastHeartbeat() (Heartbeat, int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.hbErrs) > 0 {
		fc.t.Errorf("the console refused a heartbeat: %v", fc.hbErrs[0])
	}
	if len(fc.heartbeats) == 0 {
		return Heartbeat{}, 0
	}
	return fc.heartbeats[len(fc.heartbeats)-1], len(fc.heartbeats)
}

// mustClientTLS returns a client configuration as certmgr's: the console
// CA as the only root, and a device certificate the CA signed.
func (fc *fakeConsole) mustClientTLS(t *testing.T, id string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := fc.ca.SignCSR(csr, id, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      fc.ca.Pool(),
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
	}
}

// ---- a fake pcap manager ----

type fakeManager struct {
	mu      sync.Mutex
	applies [][]pcapmgr.Desired
	caps    []agent.CaptureStatus
}

func (m *fakeManager) Apply(_ context.Context, ds []pcapmgr.Desired) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applies = append(m.applies, ds)
	return nil
}

func (m *fakeManager) Captures() []agent.CaptureStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]agent.CaptureStatus(nil), m.caps...)
}

// applied returns the names of each Apply's captures.
func (m *fakeManager) applied() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := [][]string{}
	for _, ds := range m.applies {
		names := []string{}
		for _, d := range ds {
			names = append(names, d.Name+"@"+d.Interface)
		}
		out = append(out, names)
	}
	return out
}

// ---- helpers ----

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testPoller struct {
	*Poller
	mgr   *fakeManager
	dir   string
	log   *syncBuffer
	stop  func()
	start func()
}

// mustPoller returns a poller for fc (not running: call start) with a
// fake manager, short waits and backoffs; opts overrides them.
func mustPoller(t *testing.T, fc *fakeConsole, url string, opts Options) *testPoller {
	t.Helper()
	tp := &testPoller{mgr: &fakeManager{}, log: &syncBuffer{}}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	tp.dir = opts.StateDir
	if url == "" {
		url = fc.url
	}
	opts.ConsoleURL = url
	opts.TLSConfig = fc.mustClientTLS(t, "dev-1")
	if opts.Manager == nil {
		opts.Manager = tp.mgr
	}
	opts.Logger = slog.New(slog.NewTextHandler(tp.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Application = "ringtap test"
	opts.Hostname, opts.MachineID, opts.AgentVersion = "sensor-1", "m-1", "v-test"
	if opts.Wait == 0 {
		opts.Wait = 2 * time.Second
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = time.Hour // only the one at start and after applies
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 10*time.Millisecond, 40*time.Millisecond
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tp.Poller = p
	var once sync.Once
	tp.start = func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		tp.stop = func() {
			once.Do(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Errorf("Run did not return 10s after its context was done")
				}
			})
		}
		t.Cleanup(func() {
			tp.stop()
			if t.Failed() {
				t.Logf("poller log:\n%s", tp.log)
			}
		})
	}
	return tp
}

func mustEventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func captureJSON(dir string, caps ...string) string {
	var parts []string
	for _, c := range caps {
		name, filter, _ := strings.Cut(c, ":")
		parts = append(parts, fmt.Sprintf(`{"name":%q,"interface":"eth0","filter":%q,"output":{"dir":%q}}`, name, filter, filepath.Join(dir, name)))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func mustReadPersisted(t *testing.T, dir string) persisted {
	t.Helper()
	path := filepath.Join(dir, StateFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", StateFile, fi.Mode().Perm())
	}
	p, err := loadPersisted(dir)
	if err != nil || p == nil {
		t.Fatalf("loadPersisted: %v, %v", p, err)
	}
	return *p
}

// ---- tests ----

// TestLongPoll: the first poll asks without after and gets the config at
// once; later polls ask for what is newer than the applied generation and
// a change made while one waits is applied at once; the applied config is
// persisted, 0600.
func TestLongPoll(t *testing.T) {
	fc := newFakeConsole(t)
	out := t.TempDir()
	fc.set(1, captureJSON(out, "web:tcp port 80"))
	tp := mustPoller(t, fc, "", Options{Wait: 30 * time.Second})
	tp.start()
	mustEventually(t, "generation 1 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 1, fmt.Sprint(tp.mgr.applied())
	})
	mustEventually(t, "a poll after 1 waiting", func() (bool, string) {
		r := fc.configRequests()
		return len(r) == 2, fmt.Sprint(r)
	})
	changed := time.Now()
	fc.set(2, captureJSON(out, "web:tcp port 80", "dns:udp port 53"))
	mustEventually(t, "generation 2 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 2, fmt.Sprint(tp.mgr.applied())
	})
	if d := time.Since(changed); d > 5*time.Second {
		t.Errorf("generation 2 applied %v after the change: the long poll did not answer at once", d)
	}
	if diff := cmp.Diff([][]string{{"web@eth0"}, {"web@eth0", "dns@eth0"}}, tp.mgr.applied()); diff != "" {
		t.Errorf("applies (-want +got):\n%s", diff)
	}
	reqs := fc.configRequests()
	want := []string{"wait=30s", "after=1&wait=30s", "after=2&wait=30s"}
	mustEventually(t, "a poll after 2", func() (bool, string) {
		reqs = fc.configRequests()
		return len(reqs) >= 3, fmt.Sprint(reqs)
	})
	if diff := cmp.Diff(want, reqs[:3]); diff != "" {
		t.Errorf("config requests (-want +got):\n%s", diff)
	}
	got := mustReadPersisted(t, tp.dir)
	if got.Generation != 2 || !json.Valid(got.Captures) || !strings.Contains(string(got.Captures), `"dns"`) {
		t.Errorf("persisted config: generation %d, captures %s", got.Generation, got.Captures)
	}
	for _, id := range fc.devices {
		if id != "dev-1" {
			t.Errorf("poll from device %q, want dev-1 (the client certificate)", id)
		}
	}
}

// TestNotModified: a 304 is no failure and applies nothing; the poller
// asks again for the same generation at once.
func TestNotModified(t *testing.T) {
	fc := newFakeConsole(t)
	fc.set(4, captureJSON(t.TempDir(), "web:"))
	tp := mustPoller(t, fc, "", Options{Wait: 50 * time.Millisecond})
	tp.start()
	mustEventually(t, "five polls answered 304", func() (bool, string) {
		r := fc.configRequests()
		return len(r) >= 6, fmt.Sprint(r)
	})
	for i, q := range fc.configRequests()[1:] {
		if q != "after=4&wait=50ms" {
			t.Errorf("request %d: %q, want after=4&wait=50ms", i+1, q)
		}
	}
	if n := len(tp.mgr.applied()); n != 1 {
		t.Errorf("%d applies, want 1: a 304 applied something", n)
	}
	if s := tp.Status(); s.Failures != 0 || s.LastError != "" {
		t.Errorf("status after 304s: failures %d, last error %q", s.Failures, s.LastError)
	}
}

// TestGarbageIgnored: an answer that is not a config, or captures the
// agent's config validator rejects, are logged, reported, and never
// applied; the running config stays; a good config later is applied.
func TestGarbageIgnored(t *testing.T) {
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		gen  int64  // with captures: a config with this generation
		caps string // captures JSON
		raw  string // else: this raw answer
		want string // in the heartbeat's errors ("" none: backoff)
	}{
		{name: "not JSON", raw: `<html>502 Bad Gateway</html>`},
		{name: "truncated", raw: `{"generation":5,"captures":[{"name":"x"`},
		{name: "no captures", raw: `{"generation":5}`},
		{name: "negative generation", raw: `{"generation":-3,"captures":[]}`},
		{name: "older generation", raw: `{"generation":1,"captures":[]}`},
		{name: "same generation", raw: `{"generation":2,"captures":[]}`},
		{name: "captures not a list", gen: 5, caps: `{"name":"web"}`, want: "captures: want a list"},
		{name: "bad filter", gen: 5, caps: captureJSON(out, "web:tcp port eighty"), want: "captures[0].filter"},
		{name: "unknown key", gen: 5, caps: `[{"name":"web","interface":"eth0","output":{"dir":"/tmp/x"},"rm_rf":true}]`, want: "rm_rf"},
		{name: "relative dir", gen: 5, caps: `[{"name":"web","interface":"eth0","output":{"dir":"x"}}]`, want: "captures[0].output.dir"},
		{name: "duplicate names", gen: 5, caps: captureJSON(out, "web:", "web:"), want: "captures[1].name"},
		{name: "postrotate from the console", gen: 5, caps: `[{"name":"web","interface":"eth0","output":{"dir":"` + out + `/pr","postrotate":"/bin/true"}}]`, want: "cannot run commands on the sensor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeConsole(t)
			fc.set(2, captureJSON(out, "web:udp"))
			tp := mustPoller(t, fc, "", Options{Wait: 100 * time.Millisecond})
			tp.start()
			mustEventually(t, "generation 2 applied", func() (bool, string) {
				return tp.Status().AppliedGeneration == 2, tp.log.String()
			})
			before := len(fc.configRequests())
			if tc.raw != "" {
				fc.answer(0, tc.raw)
			} else {
				fc.set(tc.gen, tc.caps)
			}
			if tc.want != "" {
				mustEventually(t, "the rejection in a heartbeat", func() (bool, string) {
					hb, _ := fc.lastHeartbeat()
					return len(hb.Errors) > 0 && strings.Contains(hb.Errors[0], tc.want), fmt.Sprint(hb.Errors)
				})
				if s := tp.Status(); !strings.Contains(s.ConfigError, tc.want) {
					t.Errorf("status config_error %q, want it to name %q", s.ConfigError, tc.want)
				}
			} else {
				mustEventually(t, "a few polls backed off", func() (bool, string) {
					return tp.Status().Failures >= 3, fmt.Sprint(tp.Status())
				})
			}
			if diff := cmp.Diff([][]string{{"web@eth0"}}, tp.mgr.applied()); diff != "" {
				t.Fatalf("applies after garbage (-want +got):\n%s", diff)
			}
			if s := tp.Status(); s.AppliedGeneration != 2 {
				t.Errorf("applied generation %d after garbage, want 2", s.AppliedGeneration)
			}
			if got := mustReadPersisted(t, tp.dir); got.Generation != 2 {
				t.Errorf("persisted generation %d after garbage, want 2", got.Generation)
			}
			mustEventually(t, "a poll after the garbage", func() (bool, string) {
				return len(fc.configRequests()) > before+1, fmt.Sprint(fc.configRequests())
			})
			// The console recovers: a good generation is applied.
			fc.set(7, captureJSON(out, "dns:udp port 53"))
			mustEventually(t, "generation 7 applied", func() (bool, string) {
				return tp.Status().AppliedGeneration == 7, fmt.Sprint(tp.Status())
			})
			if diff := cmp.Diff([][]string{{"web@eth0"}, {"dns@eth0"}}, tp.mgr.applied()); diff != "" {
				t.Errorf("applies (-want +got):\n%s", diff)
			}
			if s := tp.Status(); s.ConfigError != "" || s.Failures != 0 {
				t.Errorf("after a good config: config_error %q, failures %d", s.ConfigError, s.Failures)
			}
		})
	}
}

// TestRestoreAtStart: with the console away, Run applies the persisted
// config before anything else; when the console comes back, the poller
// asks for what is newer than it, and applies nothing twice.
func TestRestoreAtStart(t *testing.T) {
	fc := newFakeConsole(t)
	out := t.TempDir()
	dir := t.TempDir()
	// A first poller applies generation 3 and stops.
	fc.set(3, captureJSON(out, "web:tcp", "dns:udp"))
	first := mustPoller(t, fc, "", Options{StateDir: dir})
	first.start()
	mustEventually(t, "generation 3 applied", func() (bool, string) {
		return first.Status().AppliedGeneration == 3, first.log.String()
	})
	first.stop()

	// The console is away: nothing listens at this address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	away := "https://" + l.Addr().String()
	l.Close()
	second := mustPoller(t, fc, away, Options{StateDir: dir})
	second.start()
	mustEventually(t, "the persisted config restored", func() (bool, string) {
		s := second.Status()
		return s.AppliedGeneration == 3 && s.Restored, fmt.Sprint(s)
	})
	if diff := cmp.Diff([][]string{{"web@eth0", "dns@eth0"}}, second.mgr.applied()); diff != "" {
		t.Errorf("restored (-want +got):\n%s", diff)
	}
	mustEventually(t, "the console failures counted", func() (bool, string) {
		s := second.Status()
		return s.Failures >= 2 && s.LastError != "", fmt.Sprint(s)
	})
	second.stop()

	// The console is back, at generation 3 still: a third poller restores,
	// asks after=3, and applies nothing more.
	third := mustPoller(t, fc, "", Options{StateDir: dir, Wait: 100 * time.Millisecond})
	n := len(fc.configRequests())
	third.start()
	mustEventually(t, "two polls after 3", func() (bool, string) {
		r := fc.configRequests()[n:]
		return len(r) >= 2, fmt.Sprint(r)
	})
	for _, q := range fc.configRequests()[n:] {
		if q != "after=3&wait=100ms" {
			t.Errorf("poll %q after restoring generation 3, want after=3&wait=100ms", q)
		}
	}
	if got := len(third.mgr.applied()); got != 1 {
		t.Errorf("%d applies after restoring, want 1 (the restore): a generation was applied twice", got)
	}
}

// TestHeartbeatDelay: heartbeats are HeartbeatInterval apart ±10%, at
// random, so that agents started together drift apart; never closer than
// 0.9 of the interval or farther than 1.1 of it (three intervals make a
// device stale).
func TestHeartbeatDelay(t *testing.T) {
	for jitter, want := range map[float64]time.Duration{0: 9 * time.Second, 0.5: 10 * time.Second, 0.75: 10500 * time.Millisecond} {
		p := &Poller{opts: Options{HeartbeatInterval: 10 * time.Second, Jitter: func() float64 { return jitter }}}
		if got := p.heartbeatDelay(); got != want {
			t.Errorf("heartbeatDelay with jitter %v = %v, want %v", jitter, got, want)
		}
	}
	p := &Poller{opts: Options{HeartbeatInterval: 10 * time.Second, Jitter: mrand.Float64}}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := p.heartbeatDelay()
		if d < 9*time.Second || d >= 11*time.Second {
			t.Fatalf("heartbeatDelay = %v, want within [9s, 11s)", d)
		}
		seen[d.Round(100*time.Millisecond)] = true
	}
	if len(seen) < 15 {
		t.Errorf("1000 delays fell on %d tenths of a second of the 21 in [9s, 11s]: not spread", len(seen))
	}
}

// TestBackoff: while the console fails, attempts are spaced by a growing
// backoff with jitter within [BackoffMin, BackoffMax]; an answer resets it.
func TestBackoff(t *testing.T) {
	t.Run("schedule", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			jitter float64
			want   []time.Duration
		}{
			{"no jitter", 0, []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}},
			{"most jitter", 0.999, make([]time.Duration, 8)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := &Poller{opts: Options{BackoffMin: time.Second, BackoffMax: time.Minute, Jitter: func() float64 { return tc.jitter }}}
				for n := 1; n <= len(tc.want); n++ {
					d := p.backoff(n)
					base := min(time.Second<<(n-1), time.Minute)
					if d < base || d > min(base+base/4, time.Minute) || d < time.Second || d > time.Minute {
						t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, base, min(base+base/4, time.Minute))
					}
					if tc.jitter == 0 && d != tc.want[n-1]*time.Second {
						t.Errorf("backoff(%d) = %v, want %v", n, d, tc.want[n-1]*time.Second)
					}
				}
			})
		}
	})
	t.Run("console away", func(t *testing.T) {
		fc := newFakeConsole(t)
		fc.answer(http.StatusServiceUnavailable, "")
		tp := mustPoller(t, fc, "", Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 160 * time.Millisecond})
		tp.start()
		mustEventually(t, "7 attempts", func() (bool, string) {
			return len(fc.configRequests()) >= 7, fmt.Sprint(len(fc.configRequests()))
		})
		fc.mu.Lock()
		times := append([]time.Time(nil), fc.reqTimes...)
		fc.mu.Unlock()
		for i := 1; i < 7; i++ {
			gap := times[i].Sub(times[i-1])
			base := min(20*time.Millisecond<<(i-1), 160*time.Millisecond)
			if gap < base {
				t.Errorf("attempt %d came %v after the previous, want at least %v", i+1, gap, base)
			}
		}
		s := tp.Status()
		if s.Failures < 6 || !strings.Contains(s.LastError, "503") || s.RetryAt.IsZero() {
			t.Errorf("status while the console fails: %+v", s)
		}
		if len(tp.mgr.applied()) != 0 {
			t.Errorf("applied %v while the console failed", tp.mgr.applied())
		}
		fc.set(1, "[]")
		mustEventually(t, "generation 1 applied", func() (bool, string) {
			s := tp.Status()
			return s.AppliedGeneration == 1 && s.Failures == 0 && s.LastError == "", fmt.Sprint(s)
		})
	})
}

// TestHeartbeat: a heartbeat goes out at start and right after an apply
// (the interval is an hour here), in the contract's shape (the fake
// console rejects unknown fields), with the applied generation, the
// captures' state and counters, the interfaces, the errors (a capture's
// last error, the certificate's problem) and the certificate's expiry.
func TestHeartbeat(t *testing.T) {
	fc := newFakeConsole(t)
	notAfter := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	var mu sync.Mutex
	cert := CertificateStatus{NotAfter: notAfter}
	tp := mustPoller(t, fc, "", Options{
		Interfaces: func() []string { return []string{"eth1", "eth0", "lo"} },
		Certificate: func() CertificateStatus {
			mu.Lock()
			defer mu.Unlock()
			return cert
		},
	})
	running := agent.CaptureStatus{Name: "web", Interface: "eth0", Hook: "tcx", State: agent.CaptureRunning, Seen: 10, Matched: 7, Captured: 7, Written: 7, Files: 0, Bytes: 700}
	failed := agent.CaptureStatus{Name: "dns", Interface: "eth1", Hook: "xdp", State: agent.CaptureFailed, LastError: "load filter: the kernel's verifier refused it:\nlast line"}
	tp.mgr.caps = []agent.CaptureStatus{running, failed}
	tp.start()
	// The fake console starts at generation 0, no captures.
	mustEventually(t, "the heartbeat after generation 0", func() (bool, string) {
		hb, _ := fc.lastHeartbeat()
		return hb.AppliedGeneration == 0, fmt.Sprint(hb.AppliedGeneration)
	})
	var hb Heartbeat
	mu.Lock()
	cert = CertificateStatus{NotAfter: notAfter, NeedsReenroll: true, Reason: "client certificate expired at 2026-03-04T05:06:07Z: run ringtap agent enroll"}
	mu.Unlock()
	fc.set(9, "[]")
	mustEventually(t, "a heartbeat after the apply", func() (bool, string) {
		hb, _ = fc.lastHeartbeat()
		return hb.AppliedGeneration == 9, fmt.Sprint(hb.AppliedGeneration)
	})
	time.Sleep(100 * time.Millisecond)
	fc.mu.Lock()
	n := 0
	for _, h := range fc.heartbeats {
		if h.AppliedGeneration == 9 {
			n++
		}
	}
	fc.mu.Unlock()
	if n != 1 {
		t.Errorf("%d heartbeats after the apply, want 1 (the interval is an hour)", n)
	}
	want := Heartbeat{
		AppliedGeneration: 9,
		Hostname:          "sensor-1",
		AgentVersion:      "v-test",
		MachineID:         "m-1",
		Interfaces:        []string{"eth0", "eth1", "lo"},
		Captures:          []agent.CaptureStatus{running, failed},
		Errors: []string{
			"capture dns on eth1: failed: load filter: the kernel's verifier refused it:; last line",
			"client certificate expired at 2026-03-04T05:06:07Z: run ringtap agent enroll",
		},
		Certificate: HeartbeatCertificate{NotAfter: notAfter, NeedsReenroll: true},
	}
	if diff := cmp.Diff(want, hb); diff != "" {
		t.Errorf("heartbeat (-want +got):\n%s", diff)
	}
	if tp.Status().LastHeartbeat.IsZero() {
		t.Errorf("status has no last heartbeat")
	}
}

// TestHeartbeatInterval: heartbeats repeat every interval.
func TestHeartbeatInterval(t *testing.T) {
	fc := newFakeConsole(t)
	tp := mustPoller(t, fc, "", Options{HeartbeatInterval: 30 * time.Millisecond})
	tp.start()
	mustEventually(t, "5 heartbeats", func() (bool, string) {
		_, n := fc.lastHeartbeat()
		return n >= 5, fmt.Sprint(n)
	})
}

// TestReload: a new local file is checked against the running console
// config; one that breaks it changes nothing, one that fits is applied.
func TestReload(t *testing.T) {
	fc := newFakeConsole(t)
	out := t.TempDir()
	fc.set(1, `[{"name":"web","interface":"eth0","snaplen":9000,"output":{"dir":"`+filepath.Join(out, "web")+`"}}]`)
	tp := mustPoller(t, fc, "", Options{Base: []byte("rings:\n  size: 1MiB\n")})
	tp.start()
	mustEventually(t, "generation 1 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 1, tp.log.String()
	})
	// 16KiB rings cannot hold two records of snaplen 9000.
	err := tp.Reload(context.Background(), []byte("rings:\n  size: 16KiB\n"), "agent.yaml")
	if err == nil || !strings.Contains(err.Error(), "rings.size") {
		t.Fatalf("Reload with rings too small: %v, want an error naming rings.size", err)
	}
	if n := len(tp.mgr.applied()); n != 1 {
		t.Errorf("%d applies after a rejected reload, want 1", n)
	}
	if err := tp.Reload(context.Background(), []byte("http:\n  listen: 127.0.0.1:9999\n"), "agent.yaml"); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n := len(tp.mgr.applied()); n != 2 {
		t.Errorf("%d applies after a reload, want 2", n)
	}
}

// TestNew refuses what cannot work.
func TestNew(t *testing.T) {
	fc := newFakeConsole(t)
	good := Options{ConsoleURL: fc.url, TLSConfig: fc.mustClientTLS(t, "d"), StateDir: t.TempDir(), Manager: &fakeManager{}}
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"http URL", func(o *Options) { o.ConsoleURL = "http://127.0.0.1:1" }},
		{"no TLS", func(o *Options) { o.TLSConfig = nil }},
		{"no manager", func(o *Options) { o.Manager = nil }},
		{"no state", func(o *Options) { o.StateDir = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			if _, err := New(o); err == nil {
				t.Errorf("New accepted %s", tc.name)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Errorf("New: %v", err)
	}
}

// TestRefused: a 401 or 403 answer to a poll or a heartbeat is passed to
// OnRefused (the certificate manager then asks for re-enrollment); other
// failures are not.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name           string
		config, hb     int
		refused        bool
		wantInMessages string
	}{
		{name: "poll 403", config: http.StatusForbidden, refused: true, wantInMessages: "403"},
		{name: "poll 401", config: http.StatusUnauthorized, refused: true, wantInMessages: "401"},
		{name: "heartbeat 403", hb: http.StatusForbidden, refused: true, wantInMessages: "device revoked"},
		{name: "poll 503", config: http.StatusServiceUnavailable},
		{name: "heartbeat 500", hb: http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeConsole(t)
			if tc.config != 0 {
				fc.answer(tc.config, "")
			}
			fc.mu.Lock()
			fc.hbStatus = tc.hb
			fc.mu.Unlock()
			var mu sync.Mutex
			var reasons []string
			tp := mustPoller(t, fc, "", Options{OnRefused: func(r string) {
				mu.Lock()
				reasons = append(reasons, r)
				mu.Unlock()
			}})
			tp.start()
			if tc.config != 0 {
				mustEventually(t, "3 config requests", func() (bool, string) {
					return len(fc.configRequests()) >= 3, fmt.Sprint(len(fc.configRequests()))
				})
			} else {
				mustEventually(t, "the heartbeat answered", func() (bool, string) {
					fc.mu.Lock()
					defer fc.mu.Unlock()
					return fc.hbRefused > 0, fmt.Sprint(fc.hbRefused)
				})
			}
			if tc.refused {
				mustEventually(t, "OnRefused called", func() (bool, string) {
					mu.Lock()
					defer mu.Unlock()
					return len(reasons) > 0, ""
				})
			}
			tp.stop()
			mu.Lock()
			defer mu.Unlock()
			if !tc.refused {
				if len(reasons) != 0 {
					t.Fatalf("OnRefused(%q) for a failure worth retrying", reasons)
				}
				return
			}
			if len(reasons) == 0 {
				t.Fatal("OnRefused was not called")
			}
			if !strings.Contains(reasons[0], tc.wantInMessages) {
				t.Errorf("OnRefused(%q), want it to say %q", reasons[0], tc.wantInMessages)
			}
		})
	}
}

// TestEnrolledAgain: an agent enrolled again becomes a new device, whose
// generations start over. The poller forgets the old device's generation
// (its next poll has no after), keeps the old captures running until the
// new device's config comes, reports no applied generation meanwhile, and
// then applies the new device's generation 1 although the old one was at
// 3; the persisted config names the device. After a restart with the old
// device's config on disk, the same.
func TestEnrolledAgain(t *testing.T) {
	fc := newFakeConsole(t)
	out := t.TempDir()
	dir := t.TempDir()
	var mu sync.Mutex
	device := "dev-old"
	deviceID := func() string { mu.Lock(); defer mu.Unlock(); return device }
	fc.set(3, captureJSON(out, "web:tcp"))
	tp := mustPoller(t, fc, "", Options{StateDir: dir, Wait: 200 * time.Millisecond, DeviceID: deviceID})
	tp.start()
	mustEventually(t, "the old device's generation 3 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 3, fmt.Sprint(tp.Status())
	})
	if p := mustReadPersisted(t, dir); p.DeviceID != "dev-old" || p.Generation != 3 {
		t.Errorf("persisted %+v, want dev-old's generation 3", p)
	}

	// Enrolled again: the new device was never configured (generation
	// 0, no captures): the old captures keep running, and no generation
	// is reported as applied. (A poll with after=3 waits: the fake
	// console holds one config for every device.)
	n := len(fc.configRequests())
	mu.Lock()
	device = "dev-new"
	mu.Unlock()
	fc.set(0, "[]")
	mustEventually(t, "a poll after 0 (the new device's generation 0 seen)", func() (bool, string) {
		r := fc.configRequests()[n:]
		return slices.Contains(r, "after=0&wait=200ms"), fmt.Sprint(r)
	})
	if s := tp.Status(); s.AppliedGeneration != -1 || len(tp.mgr.applied()) != 1 {
		t.Errorf("with the new device unconfigured: status %+v, applied %v; want generation -1 and web still running", s, tp.mgr.applied())
	}
	mustEventually(t, "a heartbeat with no generation applied", func() (bool, string) {
		hb, _ := fc.lastHeartbeat()
		return hb.AppliedGeneration == -1, fmt.Sprint(hb.AppliedGeneration)
	})
	fc.set(1, captureJSON(out, "dns:udp"))
	mustEventually(t, "the new device's generation 1 applied", func() (bool, string) {
		return tp.Status().AppliedGeneration == 1, fmt.Sprint(tp.Status(), tp.mgr.applied())
	})
	var asked bool
	for _, q := range fc.configRequests()[n:] {
		asked = asked || q == "wait=200ms"
	}
	if !asked {
		t.Errorf("polls after the new enrollment %q: want one without after", fc.configRequests()[n:])
	}
	if diff := cmp.Diff([][]string{{"web@eth0"}, {"dns@eth0"}}, tp.mgr.applied()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if p := mustReadPersisted(t, dir); p.DeviceID != "dev-new" || p.Generation != 1 {
		t.Errorf("persisted %+v, want dev-new's generation 1", p)
	}
	mustEventually(t, "a heartbeat with generation 1", func() (bool, string) {
		hb, _ := fc.lastHeartbeat()
		return hb.AppliedGeneration == 1, fmt.Sprint(hb.AppliedGeneration)
	})
	tp.stop()

	// A restart as a third device: the second's captures are restored and
	// run, the generation is not reported as applied, and the third's
	// generation 1 replaces them.
	mu.Lock()
	device = "dev-third"
	mu.Unlock()
	fc.set(1, captureJSON(out, "ntp:udp port 123"))
	again := mustPoller(t, fc, "", Options{StateDir: dir, Wait: 200 * time.Millisecond, DeviceID: deviceID})
	again.start()
	mustEventually(t, "the third device's config applied", func() (bool, string) {
		a := again.mgr.applied()
		return len(a) == 2 && again.Status().AppliedGeneration == 1, fmt.Sprint(a)
	})
	if diff := cmp.Diff([][]string{{"dns@eth0"}, {"ntp@eth0"}}, again.mgr.applied()); diff != "" {
		t.Errorf("applied after the restart (-want +got):\n%s", diff)
	}
}

// TestEnrolledEndsLongPoll: a long poll waits for the old device's next
// config; a new enrollment ends it, and the poller asks again at once,
// with no failure counted.
func TestEnrolledEndsLongPoll(t *testing.T) {
	fc := newFakeConsole(t)
	fc.set(1, "[]")
	var mu sync.Mutex
	enrolled := make(chan struct{})
	tp := mustPoller(t, fc, "", Options{Wait: 30 * time.Second,
		Enrolled: func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			return enrolled
		}})
	tp.start()
	mustEventually(t, "a long poll after generation 1", func() (bool, string) {
		r := fc.configRequests()
		return len(r) == 2, fmt.Sprint(r)
	})
	mu.Lock()
	close(enrolled)
	enrolled = make(chan struct{})
	mu.Unlock()
	woke := time.Now()
	mustEventually(t, "the next poll", func() (bool, string) {
		r := fc.configRequests()
		return len(r) == 3, fmt.Sprint(r)
	})
	if d := time.Since(woke); d > 5*time.Second {
		t.Errorf("the next poll came %v after the new enrollment, want at once", d)
	}
	if s := tp.Status(); s.Failures != 0 || s.LastError != "" || s.AppliedGeneration != 1 {
		t.Errorf("status after the long poll ended: %+v", s)
	}
}

// TestEnrolledWakesBackoff: a poller backing off for a minute after the
// console refused it asks again at once when Enrolled says a new
// enrollment was loaded.
func TestEnrolledWakesBackoff(t *testing.T) {
	fc := newFakeConsole(t)
	fc.answer(http.StatusForbidden, `{"error":"device dev-1 is revoked"}`)
	var mu sync.Mutex
	enrolled := make(chan struct{})
	tp := mustPoller(t, fc, "", Options{BackoffMin: time.Minute, BackoffMax: time.Minute,
		Enrolled: func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			return enrolled
		}})
	tp.start()
	mustEventually(t, "the refused poll", func() (bool, string) {
		return tp.Status().Failures == 1, fmt.Sprint(tp.Status())
	})
	fc.set(1, "[]")
	mu.Lock()
	close(enrolled)
	enrolled = make(chan struct{})
	mu.Unlock()
	woke := time.Now()
	mustEventually(t, "generation 1 applied well before the minute of backoff", func() (bool, string) {
		s := tp.Status()
		return s.AppliedGeneration == 1 && s.Failures == 0, fmt.Sprint(s)
	})
	if d := time.Since(woke); d > 5*time.Second {
		t.Errorf("applied %v after the new enrollment", d)
	}
}
