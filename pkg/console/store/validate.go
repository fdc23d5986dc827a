package store

import (
	"encoding/json"
	"fmt"
)

// Validate checks what every store requires of an enrollment: ids, a
// certificate of this device with a fingerprint and an expiry.
func (e Enrollment) Validate() error {
	switch {
	case e.Device.ID == "":
		return fmt.Errorf("enrollment without a device id: %w", ErrInvalid)
	case e.Certificate.Serial == "":
		return fmt.Errorf("enrollment without a certificate serial: %w", ErrInvalid)
	case e.Certificate.DeviceID != e.Device.ID:
		return fmt.Errorf("certificate %s is for device %q, not %q: %w", e.Certificate.Serial, e.Certificate.DeviceID, e.Device.ID, ErrInvalid)
	}
	return e.Certificate.Validate()
}

// Validate checks what every store requires of a certificate.
func (c Certificate) Validate() error {
	switch {
	case c.Serial == "" || c.DeviceID == "":
		return fmt.Errorf("certificate without a serial or device: %w", ErrInvalid)
	case c.PublicKeyFingerprint == "":
		return fmt.Errorf("certificate %s without a public key fingerprint: %w", c.Serial, ErrInvalid)
	case c.NotAfter.IsZero() || c.NotAfter.Before(c.NotBefore):
		return fmt.Errorf("certificate %s without a validity period: %w", c.Serial, ErrInvalid)
	case len(c.DER) == 0:
		return fmt.Errorf("certificate %s without its DER: %w", c.Serial, ErrInvalid)
	}
	return nil
}

// Validate checks what every store requires of an install key.
func (k InstallKey) Validate() error {
	switch {
	case k.Hash.IsZero():
		return fmt.Errorf("install key without a hash: %w", ErrInvalid)
	case k.ExpiresAt.IsZero():
		return fmt.Errorf("install key without an expiry: %w", ErrInvalid)
	}
	return nil
}

// Validate checks what every store requires of an admin token.
func (t AdminToken) Validate() error {
	if t.Hash.IsZero() {
		return fmt.Errorf("admin token without a hash: %w", ErrInvalid)
	}
	return nil
}

// Validate checks what every store requires of a status.
func (s Status) Validate() error {
	switch {
	case s.Time.IsZero():
		return fmt.Errorf("status without a time: %w", ErrInvalid)
	case !json.Valid(s.Document):
		return fmt.Errorf("status document is not JSON: %w", ErrInvalid)
	}
	return nil
}
