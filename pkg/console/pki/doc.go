// Package pki is the console's certificate authority: the CA, the
// console's server certificates, the agents' client certificates, and the
// install keys and admin tokens.
//
// Trust model. The console has one CA, an ECDSA P-256 key and a
// self-signed certificate named "ringtap console CA", valid 10 years,
// created by Init in the data directory (ca.key, mode 0600; ca.pem, 0644).
// Agents trust nothing but this certificate, pinned by Fingerprint:
// "sha256:" and the hex SHA-256 of its DER, printed by `ringtap-console
// init` and passed to `ringtap agent enroll --ca-fingerprint`. The CA
// certificate is not secret; its key is.
//
// Server certificates (ServerCert) are issued by the CA for the SANs the
// console is given (IP addresses and DNS names; the agent verifies the host
// of its console URL against them), valid 90 days, with a fresh key each
// time. They are reissued at start, and while serving by GetCertificate,
// once two thirds of their life have passed or when the SANs or the CA
// changed. Their chain always holds the CA after the leaf: an enrolling
// agent takes the CA from there and keeps it only if it hashes to the pin.
//
// Listeners (ServerTLSConfig): TLS 1.3 at least. The admin listener asks
// for no client certificate (a bearer token authenticates). The agent API
// is served on one listener, AgentListener, with
// tls.VerifyClientCertIfGiven: enrollment comes before the agent has a
// certificate, so the handshake lets a client without one through, verifies
// any one given (signed by the CA, for client auth, in its validity
// period, naming a device, and verifyDevice, e.g. not revoked), and every
// handler but enrollment requires one with DeviceFromConn, which also
// refuses a certificate that expired after a kept-alive handshake.
// AgentMTLSListener (tls.RequireAndVerifyClientCert) is there for a
// deployment that moves enrollment to a listener of its own.
//
// Device certificates (SignCSR): the agent makes its ECDSA P-256 key and
// sends only a CSR. The CSR's signature must verify and its key must be
// ECDSA P-256 (not Ed25519: one algorithm throughout, the one the CA
// uses); nothing else in it is used. The certificate has the device id as
// CN and as its only URI SAN, urn:ringtap:device:<id> (DeviceURI); its
// only extended key usage is client auth; its serial is 127 random bits;
// it is valid from now - ClockSkew (5 minutes) to now + validity (30 days
// by default), never beyond the CA.
//
// Renewal (CheckRenewal, CA.Renew): over mTLS with the current
// certificate, which proves possession of its key in the handshake, the
// agent sends a CSR signed by that same key. A CSR for another key is
// refused with ErrKeyMismatch. Renewal never rotates the key; rotation
// would be a later, separate option (today: enroll again).
//
// Install keys and admin tokens (NewInstallKey, NewAdminToken): "rtk_" or
// "rta_" and 52 base32 characters (256 random bits), shown once. Only
// their SHA-256 is stored. With 256 bits of entropy a plain hash cannot be
// brute-forced, so the console may look secrets up by hash; SecretMatches
// compares hashes in constant time.
package pki
