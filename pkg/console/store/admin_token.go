package store

import "time"

// AdminToken is a bearer token of the admin API.
type AdminToken struct {
	// Hash is HashSecret of the token; the token itself is never stored.
	Hash      Hash
	Name      string
	CreatedAt time.Time
}

// TokensWithID returns the tokens of ts whose Hash.ID is id: one, or none,
// or (48 bits of two hashes alike) more, which callers refuse rather than
// guess between.
func TokensWithID(ts []AdminToken, id string) []AdminToken {
	var match []AdminToken
	for _, t := range ts {
		if t.Hash.ID() == id {
			match = append(match, t)
		}
	}
	return match
}
