// Package certmgr is the agent's side of enrollment and of its client
// certificate: Enroll (`ringtap agent enroll`) and the Manager, a
// Component of the agent's tree that renews the certificate and gives the
// agent's console clients a TLS configuration.
//
// Trust model. The agent trusts one certificate, the console's CA, pinned
// by the SHA-256 fingerprint given to enroll (see pki.Fingerprint). Before
// it sends anything, Enroll connects to the console with an empty trust
// store: the handshake fails, as it must, and the certificates the console
// presented come back in the tls.CertificateVerificationError. The CA is
// taken from that chain only if it is a self-signed CA whose fingerprint
// is the pinned one; else Enroll stops with ErrFingerprintMismatch and
// nothing was sent. Every later connection, the enrollment request
// included, is verified normally (chain, validity, host name) against
// that CA alone, and checked again for the fingerprint. Verification is
// never turned off: no Go file of the repository names the tls.Config
// field that would, and a test keeps it so.
//
// What is stored where. The state directory (DefaultStateDir,
// /var/lib/ringtap, mode 0700) holds key.pem (the ECDSA P-256 private key,
// generated here and never sent), cert.pem (the client certificate),
// ca.pem (the pinned CA) and console.json (console URL, CA fingerprint,
// device id), each mode 0600 and written atomically (temporary file,
// fsync, rename, fsync of the directory). During an enrollment the new key
// is key.pending.pem: a retry after an interruption reuses it, so the
// console can recognise the same CSR key and answer with the same
// certificate instead of a burnt install key. The previous enrollment
// stays in place until the new one is complete.
//
// The HTTP API (api.go): POST EnrollPath with an EnrollRequest, without a
// client certificate; POST RenewPath with a RenewRequest, over mTLS. JSON
// both ways; errors are an ErrorResponse with a non-2xx status.
//
// Renewal policy. Counting from when the agent obtained the certificate
// (the modification time of cert.pem after a restart), renewal is due at
// two thirds of its remaining life, ±10% of that point at random (so that
// a fleet enrolled at once spreads out), then retried with exponential
// backoff (10s to 10m, with jitter) while it fails. The CSR is for the
// same key: with the mTLS handshake this proves possession. A renewed
// certificate is written to cert.pem and presented from the next
// handshake on by TLSConfig's GetClientCertificate: nothing restarts.
//
// Failure is visible. Status (for /status.json), Ready (for /readyz) and
// WriteMetrics report the expiry, the last renewal and error, and two
// verdicts: not Ready when renewal is still failing 90% into the life,
// NeedsReenroll when the certificate expired or the console refused it
// (401/403 to a renewal, or to the poller's requests through Refused:
// a revoked device). A certificate that expired
// while the agent was down is not fatal: New succeeds, the Manager logs
// once that `ringtap agent enroll` must be run, presents no certificate,
// and watches the state directory (every 2 s) for a new enrollment, which
// it then uses without a restart. The rest of the agent keeps capturing
// with its last config.
//
// Connections. A kept-alive TLS connection presents the certificate of
// its handshake: fine across a renewal, wrong after a new enrollment (a
// connection made while the certificate was expired presents none). The
// agent's console clients therefore use Transport, which starts over with
// fresh connections at its first request after a new enrollment and sends
// again a request that was refused for the replaced certificate while in
// flight; Enrolled lets a client that backs off try again at once.
package certmgr
