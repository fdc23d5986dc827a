package certmgr

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ringtap/ringtap/pkg/console/pki"
)

// fakeConsole is the console side of enrollment and renewal, as the real
// console will serve it: pki's CA, server certificate and ServerTLSConfig
// (one agent listener), on 127.0.0.1.
type fakeConsole struct {
	t        *testing.T
	ca       *pki.CA
	url      string
	validity time.Duration

	mu          sync.Mutex
	keys        map[string]string // install key hash -> SPKI fingerprint of the CSR that used it ("" unused)
	issued      map[string]*x509.Certificate
	requests    int
	bodies      [][]byte // enrollment request bodies
	renewals    int
	failRenew   int // answer this many renewals 503
	refuseRenew bool
	failEnroll  int
	csrKeys     []string
}

func newFakeConsole(t *testing.T, validity time.Duration) *fakeConsole {
	t.Helper()
	ca, err := pki.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ca.ServerCert(pki.ServerCertConfig{Dir: t.TempDir(), Name: "agent-api", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeConsole{t: t, ca: ca, validity: validity, keys: map[string]string{}, issued: map[string]*x509.Certificate{}}
	fc.url = serveTLS(t, pki.ServerTLSConfig(sc, pki.AgentListener, nil), fc.handler())
	return fc
}

// serveTLS serves h with cfg on 127.0.0.1 and returns its https URL.
func serveTLS(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)} // failed handshakes are expected
	go func() { _ = srv.Serve(tls.NewListener(l, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String()
}

// newInstallKey adds an install key the console accepts once.
func (fc *fakeConsole) newInstallKey() string {
	secret, hash := pki.NewInstallKey()
	fc.mu.Lock()
	fc.keys[hash] = ""
	fc.mu.Unlock()
	return secret
}

func (fc *fakeConsole) fingerprint() string { return fc.ca.Fingerprint() }

func (fc *fakeConsole) stats() (requests, renewals int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.requests, fc.renewals
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (fc *fakeConsole) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+EnrollPath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fc.bodies = append(fc.bodies, body)
		var req EnrollRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		csr, err := pki.ParseCSR([]byte(req.CSR))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		spki, _ := pki.PublicKeyFingerprint(csr.PublicKey)
		fc.csrKeys = append(fc.csrKeys, spki)
		if fc.failEnroll > 0 {
			fc.failEnroll--
			writeError(w, http.StatusServiceUnavailable, errors.New("try again"))
			return
		}
		hash := pki.HashInstallKey(req.InstallKey)
		usedBy, known := fc.keys[hash]
		if !known || !pki.SecretMatches(req.InstallKey, hash) {
			writeError(w, http.StatusUnauthorized, errors.New("unknown install key"))
			return
		}
		if usedBy != "" && usedBy != spki {
			writeError(w, http.StatusUnauthorized, errors.New("install key already used"))
			return
		}
		cert := fc.issued[spki]
		if cert == nil { // a retry with the same key gets the same certificate
			id := fmt.Sprintf("dev-%d", len(fc.issued)+1)
			if cert, err = fc.ca.SignCSR(csr, id, time.Now(), fc.validity); err != nil {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			fc.issued[spki] = cert
		}
		fc.keys[hash] = spki
		id, _ := pki.DeviceID(cert)
		writeJSON(w, EnrollResponse{DeviceID: id, Certificate: string(pki.EncodeCertPEM(cert)), CA: string(fc.ca.CertPEM())})
	})
	mux.HandleFunc("POST "+RenewPath, func(w http.ResponseWriter, r *http.Request) {
		_, leaf, err := pki.DeviceFromConn(r.TLS, time.Now())
		if err != nil {
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		var req RenewRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if fc.refuseRenew {
			writeError(w, http.StatusForbidden, errors.New("device revoked"))
			return
		}
		if fc.failRenew > 0 {
			fc.failRenew--
			writeError(w, http.StatusServiceUnavailable, errors.New("database unavailable"))
			return
		}
		csr, err := pki.ParseCSR([]byte(req.CSR))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		cert, err := fc.ca.Renew(leaf, csr, time.Now(), fc.validity)
		if errors.Is(err, pki.ErrKeyMismatch) {
			writeError(w, http.StatusForbidden, err)
			return
		} else if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		fc.renewals++
		writeJSON(w, RenewResponse{Certificate: string(pki.EncodeCertPEM(cert))})
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil {
			time.Sleep(d) // an answer in flight while the agent changes
		}
		id, leaf, err := pki.DeviceFromConn(r.TLS, time.Now())
		if err != nil {
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		fmt.Fprintf(w, "%s %x", id, leaf.SerialNumber)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.mu.Lock()
		fc.requests++
		fc.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

// whoami asks the console which device and certificate serial a new
// connection made with cfg presented.
func whoami(t *testing.T, url string, client *http.Client) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/whoami", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
