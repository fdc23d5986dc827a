package store

import "time"

// Certificate is a client certificate issued to a device.
type Certificate struct {
	// Serial is the certificate's serial number as the console writes it
	// (hex).
	Serial   string
	DeviceID string
	// PublicKeyFingerprint identifies the certificate's public key, as
	// "sha256:" and the hex SHA-256 of its SubjectPublicKeyInfo.
	PublicKeyFingerprint string
	NotBefore            time.Time
	NotAfter             time.Time
	// DER is the certificate, so that a replayed enrollment gets the same
	// one back.
	DER []byte
}
