package console

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringtap/ringtap/pkg/certmgr"
	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
	"github.com/ringtap/ringtap/pkg/console/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend opens a fresh store of one kind.
type backend struct {
	name string
	open func(t *testing.T) store.Store
}

var backends = []backend{
	{"sqlite", func(t *testing.T) store.Store {
		t.Helper()
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), DBFile), store.Options{})
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		t.Helper()
		return mustOpenPostgres(t, pgtest.Start(t))
	}},
}

func mustOpenPostgres(t *testing.T, url string) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// forEachBackend runs f once per store backend, in parallel.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// clock is the console's clock in tests: real time plus an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// testConsole is a running Server with its store, CA and an admin token.
type testConsole struct {
	t     *testing.T
	st    store.Store
	ca    *pki.CA
	srv   *Server
	clock *clock
	token string
	admin *http.Client
	// stop stops the server and waits for Run; t's cleanup calls it too.
	stop func()
}

// mustCA creates a CA in a temporary directory.
func mustCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// mustConsole serves a console on 127.0.0.1 over st, signed by ca (a new
// CA when nil), with a new admin token; t's cleanup stops it.
func mustConsole(t *testing.T, st store.Store, ca *pki.CA) *testConsole {
	t.Helper()
	return mustConsoleWith(t, st, ca, nil)
}

// mustConsoleWith is mustConsole with edit (when not nil) applied to the
// server's Config.
func mustConsoleWith(t *testing.T, st store.Store, ca *pki.CA, edit func(*Config)) *testConsole {
	t.Helper()
	if ca == nil {
		ca = mustCA(t)
	}
	c := &testConsole{t: t, st: st, ca: ca, clock: &clock{}}
	token, _ := pki.NewAdminToken()
	if err := st.CreateAdminToken(context.Background(), store.AdminToken{Hash: store.HashSecret(token), Name: "test", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.token = token
	cfg := Config{
		Store: st, CA: ca, DataDir: t.TempDir(),
		AgentListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    c.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(c.stop)
	c.admin = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
	}}
	t.Cleanup(c.admin.CloseIdleConnections)
	return c
}

// do sends a request to the admin API with the console's token and
// returns the status and body.
func (c *testConsole) do(method, path string, body any, hdr ...string) (int, []byte) {
	c.t.Helper()
	return c.doToken(c.token, method, path, body, hdr...)
}

// doToken is do with another token ("" for none).
func (c *testConsole) doToken(token, method, path string, body any, hdr ...string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.srv.AdminURL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustDo is do that expects want and decodes the answer into out.
func (c *testConsole) mustDo(want int, method, path string, body, out any, hdr ...string) {
	c.t.Helper()
	code, b := c.do(method, path, body, hdr...)
	if code != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// mustInstallKey creates an install key through the admin API.
func (c *testConsole) mustInstallKey() installKeyResponse {
	c.t.Helper()
	var k installKeyResponse
	c.mustDo(http.StatusCreated, "POST", "/api/v1/install-keys", map[string]string{"expires_in": "1h", "note": "test"}, &k)
	return k
}

// agentClient is an enrolled agent: the real certificate manager and an
// HTTP client that presents its certificate.
type agentClient struct {
	t      *testing.T
	dir    string
	m      *certmgr.Manager
	client *http.Client
	url    string
}

// mustEnroll enrolls an agent with certmgr (the agent's own code) and a
// new install key.
func (c *testConsole) mustEnroll(hostname, machineID string) *agentClient {
	c.t.Helper()
	return c.mustEnrollWith(c.mustInstallKey().Key, hostname, machineID)
}

func (c *testConsole) mustEnrollWith(key, hostname, machineID string) *agentClient {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := certmgr.Enroll(ctx, certmgr.EnrollConfig{
		ConsoleURL: c.srv.AgentURL(), InstallKey: key, CAFingerprint: c.ca.Fingerprint(), StateDir: dir,
		Hostname: hostname, MachineID: machineID, AgentVersion: "test", Interfaces: []string{"eth0"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		c.t.Fatalf("enroll: %v", err)
	}
	return mustAgent(c.t, dir)
}

// mustAgent loads the enrollment in dir into a certificate manager.
func mustAgent(t *testing.T, dir string) *agentClient {
	t.Helper()
	m, err := certmgr.New(dir, certmgr.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a := &agentClient{t: t, dir: dir, m: m, url: m.ConsoleURL()}
	a.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: m.TLSConfig()}}
	t.Cleanup(a.client.CloseIdleConnections)
	return a
}

// do sends a request to the agent API and returns the status and body.
func (a *agentClient) do(method, path string, body []byte) (int, []byte) {
	a.t.Helper()
	code, b, err := agentDo(a.client, a.url, method, path, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

func agentDo(client *http.Client, url, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// mustJSON marshals v.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot is everything the store holds, to show that a refused request
// changed nothing.
type snapshot struct {
	Devices  []store.Device
	Keys     []store.InstallKey
	Configs  map[string]store.DesiredConfig
	Statuses map[string]string
	Certs    map[string]store.Certificate
	Tokens   []store.AdminToken
}

// snapshotAt is fixed so that derived states compare equal.
var snapshotAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func mustSnapshot(t *testing.T, st store.Store) snapshot {
	t.Helper()
	ctx := context.Background()
	devs, err := st.ListDevices(ctx, snapshotAt)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := st.ListInstallKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := st.ListAdminTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{Devices: devs, Keys: keys, Configs: map[string]store.DesiredConfig{}, Statuses: map[string]string{}, Certs: map[string]store.Certificate{}, Tokens: tokens}
	for _, d := range devs {
		c, err := st.GetCaptures(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.Configs[d.ID] = c
		if stt, err := st.GetStatus(ctx, d.ID); err == nil {
			s.Statuses[d.ID] = stt.Time.String() + string(stt.Document)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		cert, err := st.GetCertificate(ctx, d.CertSerial)
		if err != nil && !errors.Is(err, store.ErrRevoked) {
			t.Fatal(err)
		}
		s.Certs[d.ID] = cert
	}
	return s
}

// mustUnchanged fails when the store differs from before.
func mustUnchanged(t *testing.T, st store.Store, before snapshot) {
	t.Helper()
	if d := cmp.Diff(before, mustSnapshot(t, st)); d != "" {
		t.Errorf("the store changed (-before +after):\n%s", d)
	}
}

// mustKey returns a new ECDSA P-256 key.
func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustCSR returns a PEM CSR for key.
func mustCSR(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// pinnedClient trusts ca only and presents cert, if any.
func pinnedClient(t *testing.T, ca *pki.CA, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// mustDeviceCert issues a device certificate for key with ca, valid
// from notBefore for validity.
func mustDeviceCert(t *testing.T, ca *pki.CA, key *ecdsa.PrivateKey, id string, now time.Time, validity time.Duration) *tls.Certificate {
	t.Helper()
	csr, err := pki.ParseCSR([]byte(mustCSR(t, key)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.SignCSR(csr, id, now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

// mustLoadAgentCert loads an enrolled agent's key and certificate.
func mustLoadAgentCert(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, certmgr.CertFile), filepath.Join(dir, certmgr.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
