package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// The prefixes of the console's secrets, so that a leaked one is
// recognised (by a person or a secret scanner) and one is not taken for
// the other.
const (
	InstallKeyPrefix = "rtk_"
	AdminTokenPrefix = "rta_"
)

// secretBytes is the entropy of a secret: 256 bits.
const secretBytes = 32

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// secretLen is the length of a secret after its prefix.
var secretLen = secretEncoding.EncodedLen(secretBytes)

// NewInstallKey returns a new install key, "rtk_" and 52 lowercase base32
// characters (256 random bits), and the hash of it to store
// (HashInstallKey). The key itself is shown once and never stored.
func NewInstallKey() (secret, hash string) { return newSecret(InstallKeyPrefix) }

// NewAdminToken returns a new admin token, "rta_" and 52 lowercase base32
// characters, and the hash of it to store (HashAdminToken).
func NewAdminToken() (secret, hash string) { return newSecret(AdminTokenPrefix) }

func newSecret(prefix string) (secret, hash string) {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	secret = prefix + strings.ToLower(secretEncoding.EncodeToString(b))
	return secret, hashSecret(secret)
}

// HashInstallKey returns the hash stored for an install key: the hex
// SHA-256 of the whole key. A plain hash suffices (no salt, no slow KDF)
// because the key has 256 random bits: there is no dictionary to try.
// So the console may look a key up by its hash.
func HashInstallKey(secret string) string { return hashSecret(secret) }

// HashAdminToken returns the hash stored for an admin token, as
// HashInstallKey.
func HashAdminToken(secret string) string { return hashSecret(secret) }

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports whether secret hashes to hash, comparing the
// hashes in constant time.
func SecretMatches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hash)) == 1
}

// ValidInstallKey reports whether s has the form of an install key (it
// says nothing of whether the console knows it), to answer a mistyped or
// confused secret with a clear message before any lookup.
func ValidInstallKey(s string) bool { return validSecret(s, InstallKeyPrefix) }

// ValidAdminToken reports whether s has the form of an admin token.
func ValidAdminToken(s string) bool { return validSecret(s, AdminTokenPrefix) }

func validSecret(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != secretLen {
		return false
	}
	_, err := secretEncoding.DecodeString(strings.ToUpper(rest))
	return err == nil
}
