package certmgr

import (
	"fmt"
	"net/http"
)

// The agent API's enrollment and renewal endpoints, served by the console
// on its agent listener. Both take and return JSON (Content-Type
// application/json), over TLS 1.3.
const (
	// EnrollPath takes an EnrollRequest without a client certificate and
	// answers an EnrollResponse.
	EnrollPath = "/api/v1/agent/enroll"
	// RenewPath takes a RenewRequest over mTLS with the device's current
	// certificate and answers a RenewResponse.
	RenewPath = "/api/v1/agent/renew"
)

// MaxResponseSize bounds the body the agent reads from the console.
const MaxResponseSize = 1 << 20

// EnrollRequest is the body of POST EnrollPath.
type EnrollRequest struct {
	// InstallKey is the secret an admin created ("rtk_...").
	InstallKey string `json:"install_key"`
	// CSR is a PEM CERTIFICATE REQUEST for the agent's ECDSA P-256 key,
	// signed with it. The console uses only its public key. A retried
	// enrollment sends a CSR for the same key.
	CSR string `json:"csr"`
	// Hostname, MachineID (/etc/machine-id) and AgentVersion describe the
	// device; MachineID may repeat across cloned machines.
	Hostname     string `json:"hostname"`
	MachineID    string `json:"machine_id"`
	AgentVersion string `json:"agent_version"`
	// Interfaces are the names of the network interfaces the agent sees.
	Interfaces []string `json:"interfaces"`
}

// EnrollResponse is the 200 answer to an EnrollRequest.
type EnrollResponse struct {
	// DeviceID is the device's id, also in its certificate.
	DeviceID string `json:"device_id"`
	// Certificate is the PEM client certificate issued for the CSR's key.
	Certificate string `json:"certificate"`
	// CA is the PEM CA certificate. The agent checks that it is the one
	// it pinned; it trusts only the pinned one.
	CA string `json:"ca"`
}

// RenewRequest is the body of POST RenewPath.
type RenewRequest struct {
	// CSR is a PEM CERTIFICATE REQUEST for the key of the certificate the
	// connection presented; the console refuses another key.
	CSR string `json:"csr"`
}

// RenewResponse is the 200 answer to a RenewRequest.
type RenewResponse struct {
	// Certificate is the new PEM client certificate, same device, same
	// key.
	Certificate string `json:"certificate"`
}

// ErrorResponse is the body of every non-2xx answer of the agent API.
type ErrorResponse struct {
	Error string `json:"error"`
}

// APIError is a non-2xx answer of the console.
type APIError struct {
	StatusCode int
	Message    string // ErrorResponse.Error, or the start of the body
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("console answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("console answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Refused reports whether the console refused the request for good (401
// or 403: a bad or used install key, a revoked device, a key mismatch), as
// opposed to a failure worth retrying.
func (e *APIError) Refused() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}
