package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultClientValidity is the validity of a device certificate when
// SignCSR is given none. The agent renews at about two thirds of it.
const DefaultClientValidity = 30 * 24 * time.Hour

// DeviceURIPrefix starts the one URI SAN of a device certificate; the
// device id follows it: urn:ringtap:device:<id>. (A URN rather than a
// spiffe:// URI: these certificates do not claim to be SPIFFE SVIDs.)
const DeviceURIPrefix = "urn:ringtap:device:"

// maxCSRSize bounds the PEM a console accepts as a CSR.
const maxCSRSize = 16 << 10

// Sentinel errors.
var (
	// ErrBadCSR is returned for a CSR that does not parse or whose
	// signature does not verify with its own public key.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrKeyMismatch is returned by CheckRenewal when the CSR's public key
	// is not the key of the certificate being renewed.
	ErrKeyMismatch = errors.New("the CSR's public key is not the current certificate's")
	// ErrInvalidDeviceID is returned for a device id outside
	// [A-Za-z0-9._-]{1,64}.
	ErrInvalidDeviceID = errors.New("invalid device id: want 1 to 64 of A-Z a-z 0-9 . _ -")
	// ErrNotDeviceCert is returned by DeviceID for a certificate that is not
	// a device certificate (no client-auth usage, no device URI, or a CN
	// that disagrees with it).
	ErrNotDeviceCert = errors.New("not a ringtap device certificate")
	// ErrNoClientCert is returned by DeviceFromConn when the peer presented
	// no verified certificate.
	ErrNoClientCert = errors.New("no client certificate")
	// ErrCertExpired is returned by DeviceFromConn when the peer's
	// certificate has expired since the handshake.
	ErrCertExpired = errors.New("client certificate expired")
)

var deviceIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidDeviceID reports whether id can name a device in a certificate.
func ValidDeviceID(id string) bool { return deviceIDRe.MatchString(id) }

// DeviceURI returns the URI SAN of device id.
func DeviceURI(id string) string { return DeviceURIPrefix + id }

// ParseCSR parses a PEM "CERTIFICATE REQUEST", checks its signature (the
// requester holds the private key) and that its key is ECDSA P-256.
func ParseCSR(pemData []byte) (*x509.CertificateRequest, error) {
	if len(pemData) > maxCSRSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadCSR, maxCSRSize)
	}
	b, _ := pem.Decode(pemData)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := checkCSR(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

func checkCSR(csr *x509.CertificateRequest) error {
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrBadCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	return nil
}

// SignCSR issues the client certificate of device deviceID for the key of
// csr. Only the CSR's public key is used: subject, SANs and extensions
// are the CA's choice. The certificate has CN = deviceID, one URI SAN
// DeviceURI(deviceID), ExtKeyUsageClientAuth only, a random serial, and is
// valid from now - ClockSkew to now + validity (DefaultClientValidity when
// validity is 0), but never beyond the CA's own NotAfter. The CSR's
// signature is checked again and its key must be ECDSA P-256.
func (ca *CA) SignCSR(csr *x509.CertificateRequest, deviceID string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if !ValidDeviceID(deviceID) {
		return nil, fmt.Errorf("sign CSR for %q: %w", deviceID, ErrInvalidDeviceID)
	}
	if err := checkCSR(csr); err != nil {
		return nil, fmt.Errorf("sign CSR for %s: %w", deviceID, err)
	}
	if validity <= 0 {
		validity = DefaultClientValidity
	}
	u, err := url.Parse(DeviceURI(deviceID))
	if err != nil {
		return nil, fmt.Errorf("sign CSR for %s: %w", deviceID, err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: deviceID},
		URIs:                  []*url.URL{u},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return ca.sign(tmpl, csr.PublicKey)
}

func (ca *CA) sign(tmpl *x509.Certificate, pub any) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	return cert, nil
}

// CheckRenewal checks a renewal request: the CSR's signature verifies and
// its public key is current's. With the mTLS handshake, in which the agent
// proved it holds current's key, this is proof of possession; a CSR for
// another key is refused with ErrKeyMismatch (renewal never rotates the
// key: rotation would be a separate, later option).
func CheckRenewal(current *x509.Certificate, csr *x509.CertificateRequest) error {
	if err := checkCSR(csr); err != nil {
		return fmt.Errorf("check renewal: %w", err)
	}
	pub, ok := current.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(csr.PublicKey) {
		return fmt.Errorf("check renewal of %s: %w", current.Subject.CommonName, ErrKeyMismatch)
	}
	return nil
}

// Renew issues the successor of current, a device certificate this CA
// signed, for the same device and key: CheckRenewal, then SignCSR.
func (ca *CA) Renew(current *x509.Certificate, csr *x509.CertificateRequest, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if err := current.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("renew: current certificate not signed by this CA: %w", err)
	}
	id, err := DeviceID(current)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	if err := CheckRenewal(current, csr); err != nil {
		return nil, err
	}
	return ca.SignCSR(csr, id, now, validity)
}

// DeviceID returns the device id a device certificate names: its one URI
// SAN is DeviceURI(id), its CN is id, and it is for client auth. It does
// not check the signature or the validity period (the TLS handshake did).
func DeviceID(cert *x509.Certificate) (string, error) {
	clientAuth := false
	for _, u := range cert.ExtKeyUsage {
		clientAuth = clientAuth || u == x509.ExtKeyUsageClientAuth
	}
	if !clientAuth || cert.IsCA || len(cert.URIs) != 1 {
		return "", ErrNotDeviceCert
	}
	id, ok := strings.CutPrefix(cert.URIs[0].String(), DeviceURIPrefix)
	if !ok || !ValidDeviceID(id) || cert.Subject.CommonName != id {
		return "", ErrNotDeviceCert
	}
	return id, nil
}

// DeviceFromConn returns the device id and certificate of a connection's
// verified client certificate, for the handlers of the agent API. It
// reports ErrNoClientCert when the peer presented none (on the shared
// agent listener, only enrollment is allowed without one) and
// ErrCertExpired when the certificate expired after the handshake (a
// kept-alive connection outlives the check the handshake made).
func DeviceFromConn(cs *tls.ConnectionState, now time.Time) (string, *x509.Certificate, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", nil, ErrNoClientCert
	}
	leaf := cs.VerifiedChains[0][0]
	if now.After(leaf.NotAfter) {
		return "", nil, fmt.Errorf("%w at %s", ErrCertExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	id, err := DeviceID(leaf)
	if err != nil {
		return "", nil, err
	}
	return id, leaf, nil
}
