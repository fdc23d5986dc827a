package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
)

// DefaultServerValidity is the validity of a console server certificate.
// The console reissues it at start, and while serving, once two thirds of
// it have passed.
const DefaultServerValidity = 90 * 24 * time.Hour

// ErrNoHosts is returned by ServerCert when no host names or addresses
// are given.
var ErrNoHosts = errors.New("a server certificate needs at least one host name or IP address")

// ServerCertConfig describes one of the console's server certificates.
type ServerCertConfig struct {
	// Dir and Name locate the files: Name+".pem" (leaf then CA, 0644) and
	// Name+".key" (0600), e.g. "agent-api" and "admin".
	Dir, Name string
	// Hosts are the SANs: each is an IP address or a DNS name. An agent
	// verifies the host of its console URL against them.
	Hosts []string
	// Validity is DefaultServerValidity when 0.
	Validity time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
}

// ServerCert is a server certificate of the console, signed by the CA,
// that renews itself: GetCertificate reissues it (and rewrites its files)
// once two thirds of its life have passed. Its chain holds the CA
// certificate after the leaf, which enrollment relies on: an agent that
// has only the CA's fingerprint finds the CA there.
type ServerCert struct {
	ca  *CA
	cfg ServerCertConfig

	reissueMu sync.Mutex // serialises reissues; held without mu
	mu        sync.Mutex
	cert      *tls.Certificate
	renewAt   time.Time
}

// ServerCert loads the certificate cfg describes, or issues it (and writes
// its files) when it is missing, unreadable, not signed by ca, for other
// hosts than cfg.Hosts, or past two thirds of its life.
func (ca *CA) ServerCert(cfg ServerCertConfig) (*ServerCert, error) {
	if len(cfg.Hosts) == 0 {
		return nil, fmt.Errorf("server certificate %s: %w", cfg.Name, ErrNoHosts)
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultServerValidity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Hosts = slices.Clone(cfg.Hosts)
	s := &ServerCert{ca: ca, cfg: cfg}
	if cert, leaf, err := s.load(); err == nil && s.usable(leaf, cfg.Now()) {
		s.set(cert, leaf)
		return s, nil
	}
	if err := s.reissue(cfg.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ServerCert) paths() (certPath, keyPath string) {
	return filepath.Join(s.cfg.Dir, s.cfg.Name+".pem"), filepath.Join(s.cfg.Dir, s.cfg.Name+".key")
}

func (s *ServerCert) load() (*tls.Certificate, *x509.Certificate, error) {
	certPath, keyPath := s.paths()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, err
	}
	return &cert, cert.Leaf, nil
}

// usable reports whether a loaded certificate can be served as is.
func (s *ServerCert) usable(leaf *x509.Certificate, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(s.ca.Cert) != nil {
		return false
	}
	if !now.Before(renewalPoint(leaf)) {
		return false
	}
	var want, got []string
	for _, h := range s.cfg.Hosts {
		want = append(want, canonicalHost(h))
	}
	for _, ip := range leaf.IPAddresses {
		got = append(got, ip.String())
	}
	got = append(got, leaf.DNSNames...)
	slices.Sort(want)
	slices.Sort(got)
	return slices.Equal(slices.Compact(want), slices.Compact(got))
}

func canonicalHost(h string) string {
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}

// renewalPoint is two thirds into a certificate's life.
func renewalPoint(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

func (s *ServerCert) set(cert *tls.Certificate, leaf *x509.Certificate) {
	s.mu.Lock()
	s.cert, s.renewAt = cert, renewalPoint(leaf)
	s.mu.Unlock()
}

// reissue issues a new certificate with a new key, writes it, and serves
// it from now on.
func (s *ServerCert) reissue(now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "ringtap console " + s.cfg.Name},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(s.cfg.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(s.ca.Cert.NotAfter) {
		tmpl.NotAfter = s.ca.Cert.NotAfter
	}
	for _, h := range s.cfg.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	leaf, err := s.ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	certPath, keyPath := s.paths()
	chainPEM := append(EncodeCertPEM(leaf), EncodeCertPEM(s.ca.Cert)...)
	// The key first; until the certificate is renamed over the old one
	// the files do not match, and the next start reissues.
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	if err := atomicfile.Write(certPath, chainPEM, 0o644); err != nil {
		return fmt.Errorf("issue server certificate %s: %w", s.cfg.Name, err)
	}
	cert := &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, s.ca.Cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}
	s.set(cert, leaf)
	return nil
}

// Leaf returns the certificate being served.
func (s *ServerCert) Leaf() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert.Leaf
}

// GetCertificate serves the certificate, as tls.Config.GetCertificate. Past
// two thirds of its life it reissues it first; if that fails, it keeps
// serving the current one (valid for a third of its life still) and
// returns the error only once it has expired.
func (s *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	cert, renewAt := s.cert, s.renewAt
	s.mu.Unlock()
	if now.Before(renewAt) {
		return cert, nil
	}
	// One reissue at a time; other handshakes wait for it.
	s.reissueMu.Lock()
	defer s.reissueMu.Unlock()
	s.mu.Lock()
	cert, renewAt = s.cert, s.renewAt
	s.mu.Unlock()
	if now.Before(renewAt) {
		return cert, nil
	}
	if err := s.reissue(now); err != nil {
		if now.After(cert.Leaf.NotAfter) {
			return nil, err
		}
		return cert, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, nil
}

// Listener is the kind of console listener a server tls.Config is for.
type Listener int

const (
	// AdminListener serves the admin API and web page: HTTPS, no client
	// certificates (the admin authenticates with a bearer token).
	AdminListener Listener = iota
	// AgentListener serves the whole agent API on one listener, the
	// console's default: it asks for a client certificate and verifies
	// the one given (tls.VerifyClientCertIfGiven), because enrollment
	// comes before the agent has one. Every handler but enrollment
	// requires one with DeviceFromConn.
	AgentListener
	// AgentMTLSListener requires a verified client certificate in the
	// handshake (tls.RequireAndVerifyClientCert), for a deployment that
	// serves enrollment on a listener of its own.
	AgentMTLSListener
)

// ServerTLSConfig returns the tls.Config of a console listener of kind,
// serving sc: TLS 1.3 at least, and on the agent listeners client
// certificates verified against sc's CA, for client auth, that name a
// device (DeviceID). verifyDevice, when not nil, is then called with the
// verified leaf in the handshake (to refuse a revoked device before any
// request); a handler that wants to answer such a device with an HTTP
// status instead checks it there, after DeviceFromConn.
func ServerTLSConfig(sc *ServerCert, kind Listener, verifyDevice func(*x509.Certificate) error) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: sc.GetCertificate,
	}
	if kind == AdminListener {
		cfg.ClientAuth = tls.NoClientCert
		return cfg
	}
	cfg.ClientCAs = sc.ca.Pool()
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if kind == AgentMTLSListener {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // allowed by ClientAuth; handlers check
		}
		if len(cs.VerifiedChains) == 0 {
			return errors.New("client certificate not verified")
		}
		leaf := cs.VerifiedChains[0][0]
		if _, err := DeviceID(leaf); err != nil {
			return err
		}
		if verifyDevice != nil {
			return verifyDevice(leaf)
		}
		return nil
	}
	return cfg
}
