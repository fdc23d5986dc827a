package certmgr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ringtap/ringtap/pkg/atomicfile"
	"github.com/ringtap/ringtap/pkg/console/pki"
)

// DefaultStateDir is the agent's state directory.
const DefaultStateDir = "/var/lib/ringtap"

// The files of the state directory (mode 0700), each mode 0600 and
// written atomically (temporary file, fsync, rename, fsync of the
// directory).
const (
	KeyFile        = "key.pem"         // the device's private key (PKCS #8), made here, never sent
	PendingKeyFile = "key.pending.pem" // the key of an enrollment not finished yet
	CertFile       = "cert.pem"        // the device's client certificate
	CAFile         = "ca.pem"          // the pinned console CA
	ConsoleFile    = "console.json"    // the console URL and the CA's fingerprint
)

// Sentinel errors.
var (
	// ErrNotEnrolled is returned by New when the state directory holds no
	// enrollment.
	ErrNotEnrolled = errors.New("not enrolled: run `ringtap agent enroll --console URL --key KEY --ca-fingerprint SHA256`")
	// ErrBadState is returned by New for a state directory whose files do
	// not fit together (a key that is not the certificate's, a
	// certificate the CA did not sign, a CA that is not the pinned one).
	ErrBadState = errors.New("inconsistent state: run `ringtap agent enroll` again")
)

// consoleInfo is the content of ConsoleFile.
type consoleInfo struct {
	URL           string    `json:"url"`
	CAFingerprint string    `json:"ca_fingerprint"`
	DeviceID      string    `json:"device_id"`
	EnrolledAt    time.Time `json:"enrolled_at"`
}

// state is an enrollment as stored in the state directory.
type state struct {
	console  consoleInfo
	key      *ecdsa.PrivateKey
	cert     *x509.Certificate
	ca       *x509.Certificate
	deviceID string
	// certMod is the modification time of CertFile: when the certificate
	// was obtained (the renewal schedule counts from it).
	certMod time.Time
}

// prepareDir creates dir with mode 0700, or sets an existing one's mode
// to 0700.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

// loadState reads the enrollment stored in dir. It finishes an
// enrollment interrupted between writing the certificate and renaming its
// key into place.
func loadState(dir string) (*state, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ConsoleFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state %s: %w", dir, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st.console); err != nil {
		return nil, fmt.Errorf("state: %s: %w", ConsoleFile, err)
	}
	if st.ca, err = readCert(filepath.Join(dir, CAFile)); err != nil {
		return nil, err
	}
	if pki.Fingerprint(st.ca) != st.console.CAFingerprint {
		return nil, fmt.Errorf("state: %s is not the CA pinned in %s: %w", CAFile, ConsoleFile, ErrBadState)
	}
	certPath := filepath.Join(dir, CertFile)
	if st.cert, err = readCert(certPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state %s: %w", dir, ErrNotEnrolled)
	} else if err != nil {
		return nil, err
	}
	if err := st.cert.CheckSignatureFrom(st.ca); err != nil {
		return nil, fmt.Errorf("state: %s not signed by %s: %w", CertFile, CAFile, ErrBadState)
	}
	if st.deviceID, err = pki.DeviceID(st.cert); err != nil {
		return nil, fmt.Errorf("state: %s: %w: %w", CertFile, err, ErrBadState)
	}
	if st.key, err = readKey(filepath.Join(dir, KeyFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if st.key == nil || !st.key.PublicKey.Equal(st.cert.PublicKey) {
		// The certificate of an enrollment whose key was not renamed yet.
		pending, perr := readKey(filepath.Join(dir, PendingKeyFile))
		if perr != nil || !pending.PublicKey.Equal(st.cert.PublicKey) {
			return nil, fmt.Errorf("state: %s is not the key of %s: %w", KeyFile, CertFile, ErrBadState)
		}
		if err := os.Rename(filepath.Join(dir, PendingKeyFile), filepath.Join(dir, KeyFile)); err != nil {
			return nil, fmt.Errorf("state: finish enrollment: %w", err)
		}
		if err := atomicfile.SyncDir(dir); err != nil {
			return nil, err
		}
		st.key = pending
	}
	fi, err := os.Stat(certPath)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	st.certMod = fi.ModTime()
	return &st, nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	c, err := pki.ParseCertPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", filepath.Base(path), err)
	}
	return c, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	k, err := pki.ParseKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", filepath.Base(path), err)
	}
	return k, nil
}

// pendingKey returns the key of the enrollment in progress in dir: the
// one a previous, interrupted attempt left in PendingKeyFile (so that a
// retry sends a CSR for the same key and the console can answer it with
// the same certificate), else a new one, written there first.
func pendingKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, PendingKeyFile)
	if k, err := readKey(path); err == nil {
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(k)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, keyPEM, 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// newCSR returns a PEM CSR for key, signed by it.
func newCSR(key *ecdsa.PrivateKey, commonName string) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return "", fmt.Errorf("create CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// commitEnrollment stores a finished enrollment: the CA, the console
// file, the certificate, then the pending key renamed into place. A crash
// at any point leaves either the previous enrollment, a state New refuses
// with ErrBadState while the pending key is kept for a retry, or the new
// enrollment (loadState finishes the rename).
func commitEnrollment(dir string, info consoleInfo, ca, cert *x509.Certificate) error {
	if err := atomicfile.Write(filepath.Join(dir, CAFile), pki.EncodeCertPEM(ca), 0o600); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", ConsoleFile, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ConsoleFile), append(raw, '\n'), 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, CertFile), pki.EncodeCertPEM(cert), 0o600); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, PendingKeyFile), filepath.Join(dir, KeyFile)); err != nil {
		// A running agent's certificate manager that saw the new
		// certificate may have finished the rename itself (loadState):
		// then the key in place is the certificate's.
		k, kerr := readKey(filepath.Join(dir, KeyFile))
		if !errors.Is(err, fs.ErrNotExist) || kerr != nil || !k.PublicKey.Equal(cert.PublicKey) {
			return fmt.Errorf("store key: %w", err)
		}
	}
	return atomicfile.SyncDir(dir)
}
