package store

import "time"

// AdminToken is a bearer token of the admin API.
type AdminToken struct {
	// Hash is HashSecret of the token; the token itself is never stored.
	Hash      Hash
	Name      string
	CreatedAt time.Time
}
