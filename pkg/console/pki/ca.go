package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
)

// The CA's files in the console's data directory.
const (
	CAKeyFile  = "ca.key" // PKCS #8 PEM, mode 0600
	CACertFile = "ca.pem" // PEM, mode 0644: the CA certificate is public
)

// CAName is the common name of the console's CA.
const CAName = "ringtap console CA"

// CAValidity is how long the CA certificate is valid. There is no CA
// rotation yet: every agent pins this certificate by fingerprint.
const CAValidity = 10 * 365 * 24 * time.Hour

// ClockSkew is how far before "now" every certificate's NotBefore is set,
// so that a peer whose clock is a little behind accepts it.
const ClockSkew = 5 * time.Minute

// Sentinel errors.
var (
	// ErrExists is returned by Init when the directory already holds a CA.
	ErrExists = errors.New("a CA already exists")
	// ErrNotInitialized is returned by Load when the directory holds no CA.
	ErrNotInitialized = errors.New("no CA: run `ringtap-console init` first")
	// ErrUnsupportedKey is returned for a key that is not ECDSA P-256.
	ErrUnsupportedKey = errors.New("unsupported key: want ECDSA P-256")
	// ErrBadFingerprint is returned by NormalizeFingerprint for a string
	// that is not a SHA-256 fingerprint.
	ErrBadFingerprint = errors.New(`not a SHA-256 fingerprint: want "sha256:" and 64 hex digits`)
)

// CA is the console's certificate authority: it signs the console's
// server certificates and the agents' client certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Init creates dir (0700) if needed and a new CA in it: an ECDSA P-256
// key in CAKeyFile (0600) and a self-signed certificate in CACertFile,
// valid for CAValidity. It refuses, with ErrExists, to overwrite a CA.
func Init(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	for _, name := range []string{CAKeyFile, CACertFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("create CA in %s: %w", dir, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create CA: %w", err)
		}
	}
	ca, err := newCA(time.Now())
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	// The key first: a crash between the two writes leaves a key without a
	// certificate, which Load reports, rather than a certificate whose key
	// is lost.
	if err := atomicfile.Write(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CACertFile), EncodeCertPEM(ca.Cert), 0o644); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return ca, nil
}

// newCA returns a new CA in memory, valid from now - ClockSkew.
func newCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create CA: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: CAName},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Load reads the CA Init created in dir. It checks that the key is the
// certificate's and that the certificate is a CA, and reports
// ErrNotInitialized when there is none.
func Load(dir string) (*CA, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load CA from %s: %w", dir, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load CA from %s: %s is missing: %w", dir, CACertFile, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", CAKeyFile, err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: %s: %w", CACertFile, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("load CA: %s is not a CA certificate", CACertFile)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA: %s is not the key of %s", CAKeyFile, CACertFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Fingerprint returns "sha256:" and the lowercase hex SHA-256 of cert's
// DER encoding: the value agents pin with --ca-fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Fingerprint returns the CA certificate's fingerprint (see Fingerprint).
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return EncodeCertPEM(ca.Cert) }

// Pool returns a pool holding the CA certificate only.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// NormalizeFingerprint returns s in the form Fingerprint returns. It
// accepts upper or lower case hex, with or without the "sha256:" prefix,
// and with or without colons between the bytes (as openssl prints them).
func NormalizeFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	if p, ok := strings.CutPrefix(strings.ToLower(h), "sha256:"); ok {
		h = p
	}
	h = strings.ToLower(strings.ReplaceAll(h, ":", ""))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: %w", s, ErrBadFingerprint)
	}
	return "sha256:" + h, nil
}

// PublicKeyFingerprint returns "sha256:" and the hex SHA-256 of pub's
// SubjectPublicKeyInfo: a stable name for a key (for example to recognise
// an enrollment retried with the same CSR key).
func PublicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// newSerial returns a random positive serial number of 16 bytes (127
// random bits: the top bit is cleared so that DER needs no sign byte).
func newSerial() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// checkPublicKey reports whether pub is an ECDSA P-256 key.
func checkPublicKey(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%T: %w", pub, ErrUnsupportedKey)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("curve %s: %w", k.Curve.Params().Name, ErrUnsupportedKey)
	}
	return nil
}
