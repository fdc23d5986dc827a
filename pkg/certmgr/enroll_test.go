package certmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringtap/ringtap/pkg/console/pki"
)

func mustEnroll(t *testing.T, fc *fakeConsole, dir string) *Enrollment {
	t.Helper()
	e, err := Enroll(context.Background(), EnrollConfig{
		ConsoleURL: fc.url, InstallKey: fc.newInstallKey(), CAFingerprint: fc.fingerprint(),
		StateDir: dir, Hostname: "sensor-1", MachineID: "abc123", AgentVersion: "test", Interfaces: []string{"eth0"},
		Logger: (&logBuffer{}).logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnroll(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := filepath.Join(t.TempDir(), "state")
	e := mustEnroll(t, fc, dir)
	if e.DeviceID != "dev-1" || e.ConsoleURL != fc.url || e.CAFingerprint != fc.fingerprint() {
		t.Errorf("enrollment %+v", e)
	}

	if got := fileMode(t, dir); got != 0o700 {
		t.Errorf("state dir mode %o, want 700", got)
	}
	for _, name := range []string{KeyFile, CertFile, CAFile, ConsoleFile} {
		if got := fileMode(t, filepath.Join(dir, name)); got != 0o600 {
			t.Errorf("%s mode %o, want 600", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, PendingKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind: %v", PendingKeyFile, err)
	}
	var info consoleInfo
	raw, _ := os.ReadFile(filepath.Join(dir, ConsoleFile))
	if err := json.Unmarshal(raw, &info); err != nil || info.URL != fc.url || info.CAFingerprint != fc.fingerprint() {
		t.Errorf("%s: %s (%v)", ConsoleFile, raw, err)
	}

	// The key never left: the request holds a CSR for it and no trace of
	// the private key in any encoding.
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(st.key)
	d, err := st.key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	bodies := fc.bodies
	fc.mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d enrollment requests, want 1", len(bodies))
	}
	body := string(bodies[0])
	for _, secret := range []string{"PRIVATE KEY", hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d),
		base64.StdEncoding.EncodeToString(keyDER)[20:60], base64.RawURLEncoding.EncodeToString(d)} {
		if strings.Contains(body, secret) {
			t.Errorf("the enrollment request holds private key material %q", secret)
		}
	}
	var req EnrollRequest
	if err := json.Unmarshal(bodies[0], &req); err != nil {
		t.Fatal(err)
	}
	csr, err := pki.ParseCSR([]byte(req.CSR))
	if err != nil || !st.key.PublicKey.Equal(csr.PublicKey) {
		t.Errorf("the CSR is not for the stored key (%v)", err)
	}
	if d := cmp.Diff(EnrollRequest{Hostname: "sensor-1", MachineID: "abc123", AgentVersion: "test", Interfaces: []string{"eth0"}},
		EnrollRequest{Hostname: req.Hostname, MachineID: req.MachineID, AgentVersion: req.AgentVersion, Interfaces: req.Interfaces}); d != "" {
		t.Errorf("request (-want +got):\n%s", d)
	}

	// The stored enrollment works over mTLS.
	m, err := New(dir, Options{Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: m.TLSConfig()}}
	defer client.CloseIdleConnections()
	if got, code := whoami(t, fc.url, client); code != http.StatusOK || !strings.HasPrefix(got, "dev-1 ") {
		t.Errorf("whoami = %d %s", code, got)
	}
	if s := m.Status(); !s.Ready || s.NeedsReenroll || s.Expired || s.DeviceID != "dev-1" {
		t.Errorf("status %+v", s)
	}
}

// TestEnrollRetry: an enrollment interrupted after the console answered
// (here: an answer lost) is retried with the same key, and the console
// can answer it with the same certificate instead of a burnt key.
func TestEnrollRetry(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	fc.failEnroll = 1
	dir := t.TempDir()
	cfg := EnrollConfig{ConsoleURL: fc.url, InstallKey: fc.newInstallKey(), CAFingerprint: fc.fingerprint(), StateDir: dir, Logger: (&logBuffer{}).logger()}
	_, err := Enroll(context.Background(), cfg)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable || apiErr.Message != "try again" {
		t.Fatalf("first attempt: %v, want a 503 APIError", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PendingKeyFile)); err != nil {
		t.Fatalf("no pending key after the failed attempt: %v", err)
	}
	if _, err := New(dir, Options{}); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("New after a failed enrollment: %v, want ErrNotEnrolled", err)
	}
	if _, err := Enroll(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := Enroll(context.Background(), cfg); err == nil {
		t.Error("a used install key enrolled a new key")
	}
	fc.mu.Lock()
	keys := fc.csrKeys
	fc.mu.Unlock()
	if len(keys) < 3 || keys[0] != keys[1] || keys[2] == keys[1] {
		t.Errorf("CSR keys %v: want the retry's key to be the first attempt's, a new enrollment's another", keys)
	}
}

// TestEnrollWrongCA: a console that does not present the pinned CA is
// refused before anything is sent to it.
func TestEnrollWrongCA(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	other, err := pki.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A console whose chain holds its leaf only.
	sc, err := fc.ca.ServerCert(pki.ServerCertConfig{Dir: t.TempDir(), Name: "x", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	full, _ := sc.GetCertificate(nil)
	leafOnly := &tls.Certificate{Certificate: full.Certificate[:1], PrivateKey: full.PrivateKey}
	var leafOnlyHits atomic.Int32
	leafOnlyURL := serveTLS(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*leafOnly}},
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { leafOnlyHits.Add(1) }))

	for _, tc := range []struct {
		name, url, pin string
	}{
		{"another CA pinned", fc.url, other.Fingerprint()},
		{"fingerprint of the server certificate", fc.url, pki.Fingerprint(sc.Leaf())},
		{"chain without the CA", leafOnlyURL, fc.fingerprint()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			_, err := Enroll(context.Background(), EnrollConfig{ConsoleURL: tc.url, InstallKey: fc.newInstallKey(),
				CAFingerprint: tc.pin, StateDir: dir, Logger: (&logBuffer{}).logger()})
			if !errors.Is(err, ErrFingerprintMismatch) {
				t.Fatalf("err = %v, want ErrFingerprintMismatch", err)
			}
			if requests, _ := fc.stats(); requests != 0 || leafOnlyHits.Load() != 0 {
				t.Errorf("%d requests reached the console, want 0", requests+int(leafOnlyHits.Load()))
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory created: %v", err)
			}
		})
	}
}

// TestEnrollHostnameVerified: the pinned CA does not excuse a server
// certificate for another host.
func TestEnrollHostnameVerified(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	sc, err := fc.ca.ServerCert(pki.ServerCertConfig{Dir: t.TempDir(), Name: "x", Hosts: []string{"console.example"}})
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, pki.ServerTLSConfig(sc, pki.AgentListener, nil), fc.handler())
	_, err = Enroll(context.Background(), EnrollConfig{ConsoleURL: url, InstallKey: fc.newInstallKey(),
		CAFingerprint: fc.fingerprint(), StateDir: t.TempDir(), Logger: (&logBuffer{}).logger()})
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Fatalf("err = %v, want an x509.HostnameError", err)
	}
	if requests, _ := fc.stats(); requests != 0 {
		t.Errorf("%d requests reached the console", requests)
	}
}

func TestEnrollBadInput(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	admin, _ := pki.NewAdminToken()
	good := EnrollConfig{ConsoleURL: fc.url, InstallKey: fc.newInstallKey(), CAFingerprint: fc.fingerprint()}
	for _, tc := range []struct {
		name string
		edit func(*EnrollConfig)
		want error
	}{
		{"http URL", func(c *EnrollConfig) { c.ConsoleURL = strings.Replace(c.ConsoleURL, "https", "http", 1) }, ErrBadConsoleURL},
		{"no host", func(c *EnrollConfig) { c.ConsoleURL = "https://" }, ErrBadConsoleURL},
		{"admin token as key", func(c *EnrollConfig) { c.InstallKey = admin }, ErrBadInstallKey},
		{"empty key", func(c *EnrollConfig) { c.InstallKey = "" }, ErrBadInstallKey},
		{"bad fingerprint", func(c *EnrollConfig) { c.CAFingerprint = "sha256:abc" }, pki.ErrBadFingerprint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.StateDir = t.TempDir()
			tc.edit(&cfg)
			if _, err := Enroll(context.Background(), cfg); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if requests, _ := fc.stats(); requests != 0 {
		t.Errorf("%d requests reached the console", requests)
	}
}

// TestStateRecovery: a crash after the new certificate was written but
// before its key was renamed into place is finished at the next start.
func TestStateRecovery(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	st, _ := loadState(dir)
	if err := os.Rename(filepath.Join(dir, KeyFile), filepath.Join(dir, PendingKeyFile)); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the previous enrollment's key
	otherPEM, _ := pki.EncodeKeyPEM(other)
	if err := os.WriteFile(filepath.Join(dir, KeyFile), otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.key.Equal(st.key) {
		t.Error("recovered another key")
	}
	if _, err := os.Stat(filepath.Join(dir, PendingKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending key still there: %v", err)
	}

	// A key that matches nothing is refused.
	if err := os.Rename(filepath.Join(dir, KeyFile), filepath.Join(dir, PendingKeyFile+".x")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Options{}); !errors.Is(err, ErrBadState) {
		t.Errorf("New without the certificate's key: %v, want ErrBadState", err)
	}
}

// TestCommitAfterManagerFinished: `ringtap agent enroll` while the agent
// runs: the agent's certificate manager may see the new certificate and
// rename the pending key into place itself (loadState) before the
// enrollment does. The enrollment then succeeds; with a key in place that
// is not the certificate's, it fails as before.
func TestCommitAfterManagerFinished(t *testing.T) {
	fc := newFakeConsole(t, time.Hour)
	dir := t.TempDir()
	mustEnroll(t, fc, dir)
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	// No pending key, the certificate's key in place: what the race
	// leaves.
	if err := commitEnrollment(dir, st.console, st.ca, st.cert); err != nil {
		t.Errorf("commit after the manager finished the rename: %v", err)
	}
	// Another key in place: refused.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pki.EncodeKeyPEM(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := commitEnrollment(dir, st.console, st.ca, st.cert); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("commit with another key in place and no pending key: %v, want the rename's ErrNotExist", err)
	}
}
