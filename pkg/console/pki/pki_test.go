package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCSR(t *testing.T, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "host"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ca, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("data dir mode %o, want 700", got)
	}
	if got := mode(t, filepath.Join(dir, CAKeyFile)); got != 0o600 {
		t.Errorf("key mode %o, want 600", got)
	}
	c := ca.Cert
	if !c.IsCA || c.Subject.CommonName != CAName || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, CN %q, MaxPathLen %d", c.IsCA, c.Subject.CommonName, c.MaxPathLen)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("CA life %s, want about 10 years", life)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !loaded.Key.Equal(ca.Key) {
		t.Error("Load returned another CA")
	}
	if _, err := Init(dir); !errors.Is(err, ErrExists) {
		t.Errorf("second Init: %v, want ErrExists", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("Load of an empty dir: %v, want ErrNotInitialized", err)
	}
}

func TestFingerprint(t *testing.T) {
	ca := mustCA(t)
	sum := sha256.Sum256(ca.Cert.Raw)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := Fingerprint(ca.Cert); got != want {
		t.Fatalf("Fingerprint = %s, want %s", got, want)
	}
	colons := strings.ToUpper(hex.EncodeToString(sum[:1]))
	for _, b := range sum[1:] {
		colons += ":" + strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	for _, tc := range []struct {
		name, in string
		err      bool
	}{
		{"canonical", want, false},
		{"upper", strings.ToUpper(want), false},
		{"bare hex", hex.EncodeToString(sum[:]), false},
		{"openssl colons", "SHA256:" + colons, false},
		{"spaces", "  " + want + "\n", false},
		{"short", want[:40], true},
		{"not hex", "sha256:" + strings.Repeat("zz", 32), true},
		{"sha1 length", "sha256:" + strings.Repeat("ab", 20), true},
		{"empty", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeFingerprint(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadFingerprint) {
					t.Fatalf("err = %v, want ErrBadFingerprint", err)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("= %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestSignCSR(t *testing.T) {
	ca := mustCA(t)
	key := mustKey(t)
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name         string
		validity     time.Duration
		wantNotAfter time.Time
	}{
		{"default 30 days", 0, now.Add(30 * 24 * time.Hour)},
		{"one hour", time.Hour, now.Add(time.Hour)},
		{"clamped to the CA", 20 * 365 * 24 * time.Hour, ca.Cert.NotAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.SignCSR(mustCSR(t, key), "dev-1", now, tc.validity)
			if err != nil {
				t.Fatal(err)
			}
			type view struct {
				CN, URI             string
				EKU                 []x509.ExtKeyUsage
				IsCA                bool
				NotBefore, NotAfter time.Time
				DNS                 []string
			}
			got := view{c.Subject.CommonName, c.URIs[0].String(), c.ExtKeyUsage, c.IsCA, c.NotBefore, c.NotAfter, c.DNSNames}
			want := view{"dev-1", "urn:ringtap:device:dev-1", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false,
				now.Add(-5 * time.Minute), tc.wantNotAfter.UTC(), nil}
			got.NotBefore, got.NotAfter = got.NotBefore.UTC(), got.NotAfter.UTC()
			want.NotBefore = want.NotBefore.UTC()
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("certificate (-want +got):\n%s", d)
			}
			if len(c.URIs) != 1 {
				t.Errorf("%d URI SANs, want 1", len(c.URIs))
			}
			if !key.PublicKey.Equal(c.PublicKey) {
				t.Error("certificate not for the CSR's key")
			}
			if c.SerialNumber.BitLen() < 100 {
				t.Errorf("serial has %d bits", c.SerialNumber.BitLen())
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify: %v", err)
			}
			if id, err := DeviceID(c); err != nil || id != "dev-1" {
				t.Errorf("DeviceID = %q, %v", id, err)
			}
		})
	}
	a, _ := ca.SignCSR(mustCSR(t, key), "dev-1", now, 0)
	b, _ := ca.SignCSR(mustCSR(t, key), "dev-1", now, 0)
	if a.SerialNumber.Cmp(b.SerialNumber) == 0 {
		t.Error("two certificates with one serial")
	}
}

func TestSignCSRRefuses(t *testing.T) {
	ca := mustCA(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tampered := mustCSR(t, mustKey(t))
	tampered.PublicKey = &mustKey(t).PublicKey // signature no longer verifies with it
	for _, tc := range []struct {
		name string
		csr  *x509.CertificateRequest
		id   string
		want error
	}{
		{"P-384", mustCSR(t, p384), "dev", ErrUnsupportedKey},
		{"Ed25519", mustCSR(t, ed), "dev", ErrUnsupportedKey},
		{"bad signature", tampered, "dev", ErrBadCSR},
		{"bad device id", mustCSR(t, mustKey(t)), "dev/../x", ErrInvalidDeviceID},
		{"empty device id", mustCSR(t, mustKey(t)), "", ErrInvalidDeviceID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.SignCSR(tc.csr, tc.id, time.Now(), 0); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseCSR(t *testing.T) {
	key := mustKey(t)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	good := "-----BEGIN CERTIFICATE REQUEST-----\n" + b64(der) + "\n-----END CERTIFICATE REQUEST-----\n"
	if csr, err := ParseCSR([]byte(good)); err != nil || !key.PublicKey.Equal(csr.PublicKey) {
		t.Fatalf("ParseCSR: %v", err)
	}
	bad := der[:len(der)-1]
	bad = append(bad, der[len(der)-1]^1)
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"not PEM", "hello"},
		{"wrong type", strings.ReplaceAll(good, "CERTIFICATE REQUEST", "CERTIFICATE")},
		{"flipped bit", "-----BEGIN CERTIFICATE REQUEST-----\n" + b64(bad) + "\n-----END CERTIFICATE REQUEST-----\n"},
		{"too large", good + strings.Repeat(" ", 20<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCSR([]byte(tc.in)); !errors.Is(err, ErrBadCSR) {
				t.Fatalf("err = %v, want ErrBadCSR", err)
			}
		})
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestRenewal(t *testing.T) {
	ca := mustCA(t)
	key := mustKey(t)
	now := time.Now()
	cur, err := ca.SignCSR(mustCSR(t, key), "dev-7", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("same key", func(t *testing.T) {
		next, err := ca.Renew(cur, mustCSR(t, key), now.Add(40*time.Minute), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := DeviceID(next); id != "dev-7" || !key.PublicKey.Equal(next.PublicKey) || !next.NotAfter.After(cur.NotAfter) {
			t.Errorf("renewed: device %q, not after %s", id, next.NotAfter)
		}
	})
	t.Run("other key", func(t *testing.T) {
		if err := CheckRenewal(cur, mustCSR(t, mustKey(t))); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("CheckRenewal = %v, want ErrKeyMismatch", err)
		}
		if _, err := ca.Renew(cur, mustCSR(t, mustKey(t)), now, 0); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Renew = %v, want ErrKeyMismatch", err)
		}
	})
	t.Run("another CA's certificate", func(t *testing.T) {
		other, _ := mustCA(t).SignCSR(mustCSR(t, key), "dev-7", now, time.Hour)
		if _, err := ca.Renew(other, mustCSR(t, key), now, 0); err == nil {
			t.Fatal("renewed a certificate of another CA")
		}
	})
}

func TestSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gen    func() (string, string)
		hash   func(string) string
		prefix string
		valid  func(string) bool
		other  func(string) bool
	}{
		{"install key", NewInstallKey, HashInstallKey, "rtk_", ValidInstallKey, ValidAdminToken},
		{"admin token", NewAdminToken, HashAdminToken, "rta_", ValidAdminToken, ValidInstallKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, h := tc.gen()
			s2, h2 := tc.gen()
			if s == s2 || h == h2 {
				t.Fatal("two secrets alike")
			}
			if !strings.HasPrefix(s, tc.prefix) || len(s) != len(tc.prefix)+52 || strings.ToLower(s) != s {
				t.Errorf("secret %q", s)
			}
			if strings.Contains(h, s[len(tc.prefix):]) || len(h) != 64 {
				t.Errorf("hash %q", h)
			}
			if tc.hash(s) != h || !SecretMatches(s, h) {
				t.Error("the hash does not match its secret")
			}
			if SecretMatches(s2, h) || SecretMatches(s+"x", h) || SecretMatches("", h) || SecretMatches(s, "") {
				t.Error("a wrong secret matches")
			}
			if !tc.valid(s) || tc.other(s) || tc.valid(s[:len(s)-1]) || tc.valid(s+"a") || tc.valid(s[:len(s)-1]+"!") {
				t.Error("format check")
			}
		})
	}
}

func TestServerCert(t *testing.T) {
	ca := mustCA(t)
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	cfg := ServerCertConfig{Dir: dir, Name: "agent-api", Hosts: []string{"127.0.0.1", "console.example"}, Validity: 90 * time.Hour, Now: clock}
	first, err := ca.ServerCert(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Leaf()
	if d := cmp.Diff([]string{"console.example"}, leaf.DNSNames); d != "" || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("SANs: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if mode(t, filepath.Join(dir, "agent-api.key")) != 0o600 {
		t.Error("server key not 0600")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "console.example"}); err != nil {
		t.Error(err)
	}
	tc, _ := first.GetCertificate(nil)
	if len(tc.Certificate) != 2 || !ca.Cert.Equal(mustParse(t, tc.Certificate[1])) {
		t.Error("chain does not hold the CA after the leaf")
	}

	serial := func(c *ServerCert) string { return c.Leaf().SerialNumber.String() }
	again, err := ca.ServerCert(cfg)
	if err != nil || serial(again) != serial(first) {
		t.Errorf("reloaded a fresh certificate: reissued (%v)", err)
	}
	moved := cfg
	moved.Hosts = []string{"127.0.0.1"}
	if c, _ := ca.ServerCert(moved); serial(c) == serial(first) {
		t.Error("other hosts: not reissued")
	}
	otherCA, _ := mustCA(t).ServerCert(moved)
	if serial(otherCA) == serial(first) {
		t.Error("other CA: not reissued")
	}
	later := cfg
	later.Now = func() time.Time { return now.Add(61 * time.Hour) }
	if c, _ := ca.ServerCert(later); serial(c) == serial(first) {
		t.Error("past two thirds of its life: not reissued at start")
	}

	// While serving: GetCertificate reissues past two thirds.
	fresh := cfg
	fresh.Dir = t.TempDir()
	live, _ := ca.ServerCert(fresh)
	before := serial(live)
	now = now.Add(10 * time.Hour)
	if c, _ := live.GetCertificate(nil); c.Leaf.SerialNumber.String() != before {
		t.Error("reissued too early")
	}
	now = now.Add(60 * time.Hour)
	c, err := live.GetCertificate(nil)
	if err != nil || c.Leaf.SerialNumber.String() == before {
		t.Errorf("not reissued while serving (%v)", err)
	}
	if _, err := ca.ServerCert(ServerCertConfig{Dir: dir, Name: "x"}); !errors.Is(err, ErrNoHosts) {
		t.Errorf("no hosts: %v", err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServerTLSConfig runs real TLS servers on 127.0.0.1 with each
// listener kind and connects with and without client certificates.
func TestServerTLSConfig(t *testing.T) {
	ca := mustCA(t)
	sc, err := ca.ServerCert(ServerCertConfig{Dir: t.TempDir(), Name: "agent-api", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	key := mustKey(t)
	mkCert := func(c *x509.Certificate) *tls.Certificate {
		return &tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
	}
	valid, _ := ca.SignCSR(mustCSR(t, key), "dev-1", now, time.Hour)
	expired, _ := ca.SignCSR(mustCSR(t, key), "dev-1", now.Add(-2*time.Hour), time.Hour)
	revoked, _ := ca.SignCSR(mustCSR(t, key), "dev-revoked", now, time.Hour)
	foreign, _ := mustCA(t).SignCSR(mustCSR(t, key), "dev-1", now, time.Hour)
	serverLeaf := sc.Leaf() // a ServerAuth certificate of the same CA
	serverTLS, _ := sc.GetCertificate(nil)

	verifyDevice := func(c *x509.Certificate) error {
		if id, _ := DeviceID(c); id == "dev-revoked" {
			return errors.New("device revoked")
		}
		return nil
	}
	servers := map[Listener]string{}
	for _, kind := range []Listener{AdminListener, AgentListener, AgentMTLSListener} {
		servers[kind] = mustServe(t, ServerTLSConfig(sc, kind, verifyDevice))
	}
	for _, tc := range []struct {
		name   string
		kind   Listener
		cert   *tls.Certificate
		status int // 0: the handshake fails
	}{
		{"admin, no certificate", AdminListener, nil, http.StatusOK},
		{"agent, no certificate: enrollment", AgentListener, nil, http.StatusUnauthorized},
		{"agent, valid", AgentListener, mkCert(valid), http.StatusOK},
		{"agent, expired", AgentListener, mkCert(expired), 0},
		{"agent, other CA", AgentListener, mkCert(foreign), 0},
		{"agent, revoked", AgentListener, mkCert(revoked), 0},
		{"agent, server certificate as client", AgentListener, &tls.Certificate{Certificate: serverTLS.Certificate, PrivateKey: serverTLS.PrivateKey, Leaf: serverLeaf}, 0},
		{"mtls, no certificate", AgentMTLSListener, nil, 0},
		{"mtls, valid", AgentMTLSListener, mkCert(valid), http.StatusOK},
		{"mtls, expired", AgentMTLSListener, mkCert(expired), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool()}
			if tc.cert != nil {
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return tc.cert, nil }
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + servers[tc.kind] + "/")
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want a failed handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
		})
	}
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", servers[AdminListener], &tls.Config{MaxVersion: tls.VersionTLS12, RootCAs: ca.Pool()})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.2 handshake succeeded")
		}
	})
}

// mustServe serves, on 127.0.0.1 with cfg, a handler that answers 200
// with the device id when it has one, 200 on a listener without client
// auth, and 401 when an agent listener got no client certificate.
func mustServe(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agent := cfg.ClientCAs != nil
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !agent {
				return
			}
			id, _, err := DeviceFromConn(r.TLS, time.Now())
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, id)
		}),
		ErrorLog: log.New(io.Discard, "", 0), // failed handshakes are expected
	}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(tls.NewListener(l, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func TestDeviceFromConn(t *testing.T) {
	ca := mustCA(t)
	now := time.Now()
	c, _ := ca.SignCSR(mustCSR(t, mustKey(t)), "dev-1", now, time.Hour)
	cs := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c, ca.Cert}}}
	if id, _, err := DeviceFromConn(cs, now); err != nil || id != "dev-1" {
		t.Errorf("= %q, %v", id, err)
	}
	if _, _, err := DeviceFromConn(cs, now.Add(2*time.Hour)); !errors.Is(err, ErrCertExpired) {
		t.Errorf("after expiry: %v, want ErrCertExpired", err)
	}
	if _, _, err := DeviceFromConn(&tls.ConnectionState{}, now); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("no certificate: %v, want ErrNoClientCert", err)
	}
	if _, _, err := DeviceFromConn(nil, now); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("plain HTTP: %v, want ErrNoClientCert", err)
	}
}
