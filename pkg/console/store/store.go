package store

import (
	"context"
	"time"
)

// Store is the console's storage. It is safe for concurrent use, and
// several Stores (console processes) may share one PostgreSQL database.
//
// It is the union of one interface per kind of record, so a part of the
// console can ask for only what it uses.
type Store interface {
	InstallKeys
	Devices
	Certificates
	Configs
	Statuses
	AdminTokens
	Jobs
	// Close releases the database and ends WaitForChange calls; closing
	// twice is safe.
	Close() error
}

// InstallKeys are the single-use keys that enroll agents.
type InstallKeys interface {
	// CreateInstallKey stores k (by its hash); ErrExists when the hash is
	// taken, ErrInvalid when it is zero or k has no expiry.
	CreateInstallKey(ctx context.Context, k InstallKey) error
	// ListInstallKeys returns the keys, newest first.
	ListInstallKeys(ctx context.Context) ([]InstallKey, error)
	// ConsumeInstallKey enrolls a device with the key whose hash is given:
	// atomically, it marks the key used by e's public key
	// (e.Certificate.PublicKeyFingerprint) and stores e.Device (with an
	// empty desired config, generation 0) and e.Certificate.
	//
	// A retry with the same public key within EnrollRetryWindow of the
	// first use returns the enrollment stored then, with replayed true;
	// the caller then discards e and answers with what was returned. Any
	// other use of a used key is ErrKeyUsed; an unused key past its expiry
	// is ErrKeyExpired; an unknown hash is ErrNotFound. A replay for a
	// device revoked since is ErrRevoked.
	ConsumeInstallKey(ctx context.Context, hash Hash, e Enrollment, now time.Time) (got Enrollment, replayed bool, err error)
}

// Devices are the enrolled agents.
type Devices interface {
	// GetDevice returns the device, its State derived at now.
	GetDevice(ctx context.Context, id string, now time.Time) (Device, error)
	// ListDevices returns every device, revoked ones too, by hostname
	// then id, their State derived at now.
	ListDevices(ctx context.Context, now time.Time) ([]Device, error)
	// DuplicateMachineIDs returns the machine ids shared by more than one
	// device that is not revoked, for a warning; the devices stay apart.
	DuplicateMachineIDs(ctx context.Context) ([]Duplicate, error)
	// RevokeDevice marks the device revoked at now and wakes its
	// WaitForChange calls. Revoking again keeps the first time.
	RevokeDevice(ctx context.Context, id string, now time.Time) (Device, error)
}

// Certificates are the client certificates issued to devices.
type Certificates interface {
	// GetCertificate returns the certificate with this serial;
	// ErrRevoked (with the certificate) when its device is revoked.
	GetCertificate(ctx context.Context, serial string) (Certificate, error)
	// RenewCertificate stores c as its device's current certificate. Its
	// public key must be the current certificate's (ErrKeyMismatch); the
	// device must exist (ErrNotFound) and not be revoked (ErrRevoked).
	RenewCertificate(ctx context.Context, c Certificate) error
}

// Configs are the desired configs of devices and their change feed.
type Configs interface {
	// GetCaptures returns the device's desired config; generation 0 with
	// no captures until one is put.
	GetCaptures(ctx context.Context, device string) (DesiredConfig, error)
	// ListGenerations returns the generation of every device's desired
	// config, by device id, in one query (the device list).
	ListGenerations(ctx context.Context) (map[string]int64, error)
	// PutCaptures replaces the device's captures if its generation is
	// ifMatch (or ifMatch is AnyGeneration) and returns the config with
	// its new generation, one more. A mismatch is ErrStaleGeneration, a
	// revoked device ErrRevoked. It wakes WaitForChange on every Store of
	// the database.
	PutCaptures(ctx context.Context, device string, ifMatch int64, captures []Capture, now time.Time) (DesiredConfig, error)
	// WaitForChange returns the device's desired config as soon as its
	// generation is above after: at once when it is already, else when a
	// PutCaptures through any Store on the database makes it so (within a
	// second). It returns ctx's error when ctx ends first, ErrRevoked when
	// the device is or becomes revoked, and ErrNotFound for no device.
	WaitForChange(ctx context.Context, device string, after int64) (DesiredConfig, error)
}

// Statuses are the last heartbeats of devices.
type Statuses interface {
	// PutStatus stores s as the device's last heartbeat and updates the
	// device from it (last heartbeat, hostname, agent version,
	// interfaces). ErrRevoked for a revoked device; ErrInvalid when the
	// document is not JSON.
	PutStatus(ctx context.Context, device string, s Status) error
	// GetStatus returns the device's last heartbeat; ErrNotFound when it
	// has sent none.
	GetStatus(ctx context.Context, device string) (Status, error)
	// ListStatuses returns every device's last status, by device id, in
	// one query (the device list); a device without a heartbeat has none.
	ListStatuses(ctx context.Context) (map[string]Status, error)
}

// AdminTokens are the bearer tokens of the admin API.
type AdminTokens interface {
	// CreateAdminToken stores t (by its hash); ErrExists when taken.
	CreateAdminToken(ctx context.Context, t AdminToken) error
	// CheckAdminToken returns nil when a token has this hash, ErrNotFound
	// when none has.
	CheckAdminToken(ctx context.Context, hash Hash) error
	// ListAdminTokens returns every admin token, oldest first.
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
	// DeleteAdminToken deletes the token with this hash: ErrNotFound when
	// none has it, ErrLastToken (and nothing deleted) when it is the only
	// one. Two deletes at once cannot leave the store without a token.
	DeleteAdminToken(ctx context.Context, hash Hash) error
}
