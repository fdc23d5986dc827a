package store

import "errors"

// Sentinel errors. Store methods wrap them with context; test with
// errors.Is.
var (
	// ErrNotFound is a device, certificate, install key, admin token or
	// status that is not there.
	ErrNotFound = errors.New("not found")
	// ErrExists is a record created with an id, serial or hash that is
	// already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid is a record the store refuses as given: an empty id, a
	// zero hash, a document that is not JSON.
	ErrInvalid = errors.New("invalid")
	// ErrKeyUsed is an install key that was consumed already, by another
	// public key or longer than EnrollRetryWindow ago.
	ErrKeyUsed = errors.New("install key already used")
	// ErrKeyExpired is an install key past its expiry.
	ErrKeyExpired = errors.New("install key expired")
	// ErrKeyMismatch is a renewal whose public key is not the device's
	// current one.
	ErrKeyMismatch = errors.New("public key does not match the device's current certificate")
	// ErrRevoked is a device (or a certificate of a device) that was
	// revoked.
	ErrRevoked = errors.New("device revoked")
	// ErrStaleGeneration is a PutCaptures whose expected generation is not
	// the current one: someone else changed the config first.
	ErrStaleGeneration = errors.New("stale generation")
	// ErrLastToken is a delete of the only admin token left: the admin
	// API would have no way in.
	ErrLastToken = errors.New("the last admin token")
	// ErrSchemaTooNew is a database migrated by a newer console than this
	// binary.
	ErrSchemaTooNew = errors.New("schema too new")
)

// ErrClosed is a call on a Store after Close, or a WaitForChange that
// Close ended.
var ErrClosed = errors.New("store closed")
