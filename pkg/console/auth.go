package console

import (
	"crypto/x509"
	"errors"
	"net/http"
	"strings"

	"github.com/ringtap/ringtap/pkg/console/pki"
	"github.com/ringtap/ringtap/pkg/console/store"
)

// requireAdmin lets a request through to h only with a known admin token
// in `Authorization: Bearer ...`; else it answers 401 and reads nothing.
func (s *Server) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ringtap console"`)
		switch {
		case !ok || token == "":
			writeError(w, http.StatusUnauthorized, "no admin token: send the token `ringtap-console init` printed as Authorization: Bearer TOKEN")
			return
		case !pki.ValidAdminToken(token):
			writeError(w, http.StatusUnauthorized, "not an admin token: it starts with rta_, as `ringtap-console init` printed it")
			return
		}
		err := s.cfg.Store.CheckAdminToken(r.Context(), store.HashSecret(token))
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusUnauthorized, "unknown admin token: use a token of this console (`ringtap-console init` printed the first; deleted tokens are refused)")
			return
		case err != nil:
			s.log.Error("check admin token", "err", err)
			writeError(w, http.StatusServiceUnavailable, "the console cannot check the token now: try again")
			return
		}
		w.Header().Del("WWW-Authenticate")
		h.ServeHTTP(w, r)
	})
}

// bearerToken is the token of `Authorization: Bearer ...`.
func bearerToken(r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(token), ok
}

// callerToken is the hash of the admin token a request that requireAdmin
// let through carries. (It is read again from the header rather than
// passed in the request's context: a request copied for that would hide
// the route the ServeMux records on it from the metrics wrapper.)
func callerToken(r *http.Request) store.Hash {
	token, _ := bearerToken(r)
	return store.HashSecret(token)
}

// device is the caller of an agent endpoint, as its client certificate
// names it.
type device struct {
	ID   string
	Cert *x509.Certificate
	// Serial is the certificate's serial as the store keeps it.
	Serial string
}

// deviceHandler is an agent endpoint that acts for one device.
type deviceHandler func(w http.ResponseWriter, r *http.Request, d device)

// requireDevice lets a request through to h only with a verified client
// certificate, still valid, that the store issued to a device that is
// not revoked: 401 without a certificate or with an expired one, 403 for
// a revoked device or a certificate the store does not know.
func (s *Server) requireDevice(h deviceHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, cert, err := pki.DeviceFromConn(r.TLS, s.now())
		switch {
		case errors.Is(err, pki.ErrNoClientCert):
			writeError(w, http.StatusUnauthorized, "no client certificate: this endpoint needs the device certificate of an enrolled agent (ringtap agent enroll)")
			return
		case errors.Is(err, pki.ErrCertExpired):
			writeError(w, http.StatusUnauthorized, "%v: enroll the agent again with a new install key", err)
			return
		case err != nil:
			writeError(w, http.StatusUnauthorized, "%v", err)
			return
		}
		serial := serialOf(cert)
		c, err := s.cfg.Store.GetCertificate(r.Context(), serial)
		switch {
		case errors.Is(err, store.ErrRevoked):
			writeError(w, http.StatusForbidden, "device %s is revoked: enroll it again with a new install key", id)
			return
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusForbidden, "certificate %s was not issued by this console's store", serial)
			return
		case err != nil:
			s.log.Error("look up client certificate", "serial", serial, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the console cannot check the certificate now: try again")
			return
		}
		if c.DeviceID != id {
			writeError(w, http.StatusForbidden, "certificate %s is not device %s's", serial, id)
			return
		}
		h(w, r, device{ID: id, Cert: cert, Serial: serial})
	})
}

// serialOf is a certificate's serial as the console stores it: lowercase
// hex.
func serialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
