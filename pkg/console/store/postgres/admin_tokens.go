package postgres

import (
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
