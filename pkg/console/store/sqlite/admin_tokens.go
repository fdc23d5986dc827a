package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// CreateAdminToken implements store.AdminTokens.
func (s *Store) CreateAdminToken(ctx context.Context, t store.AdminToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO admin_tokens (hash, name, created_at) VALUES (?, ?, ?)`, t.Hash[:], t.Name, ns(t.CreatedAt))
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
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM admin_tokens WHERE hash = ?`, hash[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("admin token: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("check admin token: %w", err)
	}
	return nil
}

// ListAdminTokens implements store.AdminTokens.
func (s *Store) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash, name, created_at FROM admin_tokens ORDER BY created_at, hash`)
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	defer rows.Close()
	tokens := []store.AdminToken{}
	for rows.Next() {
		var (
			t       store.AdminToken
			hash    []byte
			created int64
		)
		if err := rows.Scan(&hash, &t.Name, &created); err != nil {
			return nil, fmt.Errorf("list admin tokens: %w", err)
		}
		copy(t.Hash[:], hash)
		t.CreatedAt = fromNS(created)
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", err)
	}
	return tokens, nil
}

// DeleteAdminToken implements store.AdminTokens. The write transaction
// (one writer) makes the count and the delete one step.
func (s *Store) DeleteAdminToken(ctx context.Context, hash store.Hash) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	defer tx.Rollback()
	var found, total int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE hash = ?), count(*) FROM admin_tokens`, hash[:]).Scan(&found, &total)
	if err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	switch {
	case found == 0:
		return fmt.Errorf("delete admin token %s: %w", hash, store.ErrNotFound)
	case total == 1:
		return fmt.Errorf("delete admin token %s: %w", hash, store.ErrLastToken)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_tokens WHERE hash = ?`, hash[:]); err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete admin token: %w", err)
	}
	return nil
}
