package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// Hash is the SHA-256 of a secret (an install key, an admin token): what
// the store keeps instead of the secret.
type Hash [sha256.Size]byte

// HashSecret returns the hash of secret as stored.
func HashSecret(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// IsZero says whether h is unset.
func (h Hash) IsZero() bool { return h == Hash{} }

// String is h in hex, for logs and messages: it reveals nothing of the
// secret.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ID names the secret in lists, logs and API paths: the first 12 hex
// digits of its hash (48 bits), which tell a console's few keys and
// tokens apart and reveal nothing of the secret.
func (h Hash) ID() string { return hex.EncodeToString(h[:6]) }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random id for a device: 26 characters of lowercase
// base32 (128 bits), safe in URLs, file names and certificate names.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewSecret returns a random secret for an install key or admin token:
// 32 bytes, in the same encoding as NewID (52 characters).
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}
