package certmgr

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
)

// Sentinel errors of enrollment.
var (
	// ErrFingerprintMismatch is returned when the console presents no CA
	// with the pinned fingerprint. Nothing was sent to it.
	ErrFingerprintMismatch = errors.New("the console presented no CA certificate with the pinned fingerprint: check --ca-fingerprint against the output of `ringtap-console init`")
	// ErrBadConsoleURL is returned for a console URL that is not https://host[:port].
	ErrBadConsoleURL = errors.New("the console URL must be https://HOST[:PORT]")
	// ErrBadInstallKey is returned for a key that does not look like an
	// install key ("rtk_..."); it is not sent.
	ErrBadInstallKey = errors.New(`not an install key: want "rtk_" and 52 characters, as printed by the console`)
	// ErrBadResponse is returned when the console's answer does not parse or
	// does not fit the request (a certificate for another key, another CA).
	ErrBadResponse = errors.New("bad answer from the console")
)

// EnrollConfig is what enrollment needs.
type EnrollConfig struct {
	ConsoleURL    string // https://host[:port]
	InstallKey    string // "rtk_..."
	CAFingerprint string // "sha256:<hex>", see pki.NormalizeFingerprint
	StateDir      string // DefaultStateDir when empty

	// What the console records about the device.
	Hostname     string
	MachineID    string
	AgentVersion string
	Interfaces   []string

	Logger *slog.Logger // slog.Default() when nil
}

// Enrollment describes a finished enrollment.
type Enrollment struct {
	DeviceID      string
	ConsoleURL    string
	CAFingerprint string
	NotAfter      time.Time // of the certificate
}

// Enroll enrolls the agent with a console and stores the result in the
// state directory:
//
//  1. It connects to the console and takes its CA certificate from the
//     chain the console presents (the handshake is verified against an
//     empty trust store, so it fails, and nothing is sent). The CA must be
//     a self-signed CA certificate whose SHA-256 fingerprint is the pinned
//     one, else ErrFingerprintMismatch.
//  2. It generates an ECDSA P-256 key (or takes the one of an interrupted
//     attempt), stored in PendingKeyFile, and a CSR for it.
//  3. Over a new connection verified against the pinned CA only
//     (hostname included), it POSTs an EnrollRequest to EnrollPath.
//  4. It checks the certificate (signed by the pinned CA, for its key,
//     for client auth, naming the device id answered), then stores CA,
//     console URL, certificate and key (see commitEnrollment).
//
// An existing enrollment is replaced only once the new one succeeded.
func Enroll(ctx context.Context, cfg EnrollConfig) (*Enrollment, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	consoleURL, err := parseConsoleURL(cfg.ConsoleURL)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	pin, err := pki.NormalizeFingerprint(cfg.CAFingerprint)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if !pki.ValidInstallKey(cfg.InstallKey) {
		return nil, fmt.Errorf("enroll: %w", ErrBadInstallKey)
	}
	ca, err := fetchCA(ctx, consoleURL, pin)
	if err != nil {
		return nil, fmt.Errorf("enroll with %s: %w", consoleURL, err)
	}
	log.Info("console CA matches the pinned fingerprint", "console", consoleURL.String(), "ca_fingerprint", pin)

	if err := prepareDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	key, err := pendingKey(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	csr, err := newCSR(key, cfg.Hostname)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	client := newClient(pinnedTLSConfig(ca, pin, nil))
	defer client.CloseIdleConnections()
	var resp EnrollResponse
	err = postJSON(ctx, client, consoleURL.JoinPath(EnrollPath).String(), EnrollRequest{
		InstallKey:   cfg.InstallKey,
		CSR:          csr,
		Hostname:     cfg.Hostname,
		MachineID:    cfg.MachineID,
		AgentVersion: cfg.AgentVersion,
		Interfaces:   cfg.Interfaces,
	}, &resp)
	if err != nil {
		return nil, fmt.Errorf("enroll with %s: %w", consoleURL, err)
	}
	if resp.CA != "" {
		got, err := pki.ParseCertPEM([]byte(resp.CA))
		if err != nil || !got.Equal(ca) {
			return nil, fmt.Errorf("enroll: %w: its CA is not the pinned one", ErrBadResponse)
		}
	}
	cert, err := checkIssued(resp.Certificate, ca, key, time.Now())
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	id, _ := pki.DeviceID(cert) // checked by checkIssued
	if id != resp.DeviceID {
		return nil, fmt.Errorf("enroll: %w: the certificate names device %q, the answer %q", ErrBadResponse, id, resp.DeviceID)
	}
	info := consoleInfo{URL: consoleURL.String(), CAFingerprint: pin, DeviceID: id, EnrolledAt: time.Now().UTC()}
	if err := commitEnrollment(cfg.StateDir, info, ca, cert); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	log.Info("enrolled", "device_id", id, "console", info.URL, "not_after", cert.NotAfter, "state_dir", cfg.StateDir)
	return &Enrollment{DeviceID: id, ConsoleURL: info.URL, CAFingerprint: pin, NotAfter: cert.NotAfter}, nil
}

// parseConsoleURL accepts https://host[:port] with an optional path
// prefix, and drops a trailing slash.
func parseConsoleURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: %w", s, ErrBadConsoleURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// fetchCA returns the CA certificate with fingerprint pin from the chain
// the console at u presents. The handshake verifies the chain against an
// empty pool, which fails by design and hands back the certificates the
// server sent (tls.CertificateVerificationError): the client sends no
// data, and the certificate is trusted only if it hashes to pin.
func fetchCA(ctx context.Context, u *url.URL, pin string) (*x509.Certificate, error) {
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 15 * time.Second},
		Config: &tls.Config{
			MinVersion: tls.VersionTLS13,
			RootCAs:    x509.NewCertPool(), // empty: nothing verifies yet
			ServerName: u.Hostname(),
		},
	}
	conn, err := d.DialContext(ctx, "tcp", hostPort(u))
	if err == nil {
		// Impossible with an empty pool; refuse rather than guess.
		_ = conn.Close()
		return nil, fmt.Errorf("fetch console CA: %w", ErrFingerprintMismatch)
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		return nil, fmt.Errorf("connect to console: %w", err)
	}
	for _, c := range cve.UnverifiedCertificates {
		if pki.Fingerprint(c) != pin {
			continue
		}
		if !c.IsCA || !c.BasicConstraintsValid || c.CheckSignatureFrom(c) != nil {
			return nil, fmt.Errorf("fetch console CA: the pinned certificate is not a self-signed CA")
		}
		return c, nil
	}
	return nil, ErrFingerprintMismatch
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// PinnedTLSConfig fetches the CA of the console at u and returns a
// client TLS config that trusts that CA alone, and only when its SHA-256
// fingerprint is pin ("sha256:..."), as an enrolling agent does: the
// probe handshake sends nothing, and no certificate check is skipped.
// Tools that reach the admin API from a terminal use it. A console whose
// chain holds no CA with that fingerprint is ErrFingerprintMismatch.
func PinnedTLSConfig(ctx context.Context, u *url.URL, pin string) (*tls.Config, error) {
	ca, err := fetchCA(ctx, u, pin)
	if err != nil {
		return nil, err
	}
	return pinnedTLSConfig(ca, pin, nil), nil
}

// pinnedTLSConfig returns a client config that trusts ca only and checks
// again, after the standard verification, that every verified chain ends
// at the pinned fingerprint. getCert, when not nil, supplies the client
// certificate.
func pinnedTLSConfig(ca *x509.Certificate, pin string, getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              pool,
		GetClientCertificate: getCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return ErrFingerprintMismatch
			}
			for _, chain := range cs.VerifiedChains {
				if pki.Fingerprint(chain[len(chain)-1]) != pin {
					return ErrFingerprintMismatch
				}
			}
			return nil
		},
	}
}

// newClient returns an HTTP client for the console. It uses no proxy: the
// CA probe connects directly too.
func newClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 15 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 2,
		},
		Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // never resend a key or CSR elsewhere
		},
	}
}

// postJSON POSTs in as JSON and decodes a 200 answer into out; any other
// status is an *APIError.
func postJSON(ctx context.Context, client *http.Client, url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if len(raw) > MaxResponseSize {
		return fmt.Errorf("%w: answer larger than %d bytes", ErrBadResponse, MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{StatusCode: resp.StatusCode}
		var er ErrorResponse
		if json.Unmarshal(raw, &er) == nil && er.Error != "" {
			e.Message = er.Error
		} else {
			e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
		}
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return nil
}

// checkIssued parses a certificate the console issued and checks that it
// is for key, signed by ca, valid at now, for client auth, and a device
// certificate.
func checkIssued(certPEM string, ca *x509.Certificate, key *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, error) {
	cert, err := pki.ParseCertPEM([]byte(certPEM))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: the certificate is not for this agent's key", ErrBadResponse)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if _, err := pki.DeviceID(cert); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return cert, nil
}
