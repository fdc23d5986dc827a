package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// CreateAdminToken implements store.AdminTokens.
func (s *Store) CreateAdminToken(ctx context.Context, t store.AdminToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO admin_tokens (hash, name, created_at) VALUES ($1, $2, $3)`, t.Hash[:], t.Name, t.CreatedAt)
	if isUnique(err) {
		return fmt.Errorf("create admin token %q: %w", t.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create admin token %q: %w", t.Name, err)
	}
	return nil
}

// CheckAdminToken implements store.AdminTokens. The lookup is by hash, so
// its timing tells nothing of a token.
func (s *Store) CheckAdminToken(ctx context.Context, hash store.Hash) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM admin_tokens WHERE hash = $1`, hash[:]).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("admin token: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("check admin token: %w", err)
	}
	return nil
}

// ListAdminTokens implements store.AdminTokens.
func (s *Store) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT hash, name, created_at FROM admin_tokens ORDER BY created_at, hash`)
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	defer rows.Close()
	tokens := []store.AdminToken{}
	for rows.Next() {
		var (
			t    store.AdminToken
			hash []byte
		)
		if err := rows.Scan(&hash, &t.Name, &t.CreatedAt); err != nil {
			return nil, fmt.Errorf("list admin tokens: %w", err)
		}
		copy(t.Hash[:], hash)
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	return tokens, nil
}

// DeleteAdminToken implements store.AdminTokens. Locking every row
// first serializes deletes across consoles: one waiting for another's
// commit re-reads the rows that remain, so two deletes of the last two
// tokens leave one.
func (s *Store) DeleteAdminToken(ctx context.Context, hash store.Hash) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, `SELECT hash FROM admin_tokens FOR UPDATE`)
	if err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	var found bool
	total := 0
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return fmt.Errorf("delete admin token: %w", err)
		}
		total++
		found = found || bytes.Equal(h, hash[:])
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	switch {
	case !found:
		return fmt.Errorf("delete admin token %s: %w", hash, store.ErrNotFound)
	case total == 1:
		return fmt.Errorf("delete admin token %s: %w", hash, store.ErrLastToken)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM admin_tokens WHERE hash = $1`, hash[:]); err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	return nil
}
