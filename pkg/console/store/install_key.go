package store

import "time"

// InstallKey is a single-use key an admin creates to enroll one agent.
type InstallKey struct {
	// Hash is HashSecret of the key; the key itself is never stored.
	Hash      Hash
	CreatedAt time.Time
	ExpiresAt time.Time
	// Note is the admin's, free text.
	Note string
	// UsedAt is zero while the key is unused; then UsedBy is the
	// fingerprint of the CSR public key that used it and DeviceID the
	// device enrolled.
	UsedAt   time.Time
	UsedBy   string
	DeviceID string
}

// Enrollment is what consuming an install key stores: a device and its
// first certificate.
type Enrollment struct {
	Device      Device
	Certificate Certificate
}
