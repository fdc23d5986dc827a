package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// PutStatus implements store.Statuses. A heartbeat older than the one
// stored does not replace it.
func (s *Store) PutStatus(ctx context.Context, device string, st store.Status) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	var ifaces any // NULL keeps the interfaces stored
	if st.Interfaces != nil {
		ifaces = st.Interfaces
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	defer tx.Rollback(context.Background())
	var revoked *time.Time
	err = tx.QueryRow(ctx, `SELECT revoked_at FROM devices WHERE id = $1 FOR UPDATE`, device).Scan(&revoked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("put status: device %s: %w", device, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("put status of device %s: %w", device, err)
	case revoked != nil:
		return fmt.Errorf("put status of device %s: %w", device, store.ErrRevoked)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO statuses (device_id, received_at, applied_generation, document) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,
			applied_generation = excluded.applied_generation, document = excluded.document
		WHERE statuses.received_at <= excluded.received_at`,
		device, st.Time, st.AppliedGeneration, string(st.Document))
	if err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // an older heartbeat: nothing to do
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET last_heartbeat = $1,
			hostname = COALESCE(NULLIF($2, ''), hostname), agent_version = COALESCE(NULLIF($3, ''), agent_version),
			interfaces = COALESCE($4::jsonb, interfaces)
		WHERE id = $5`, st.Time, st.Hostname, st.AgentVersion, ifaces, device); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	return nil
}

// GetStatus implements store.Statuses.
func (s *Store) GetStatus(ctx context.Context, device string) (store.Status, error) {
	var (
		st  store.Status
		doc string
	)
	err := s.pool.QueryRow(ctx, `SELECT s.received_at, s.applied_generation, s.document::text, d.hostname, d.agent_version, d.interfaces
		FROM statuses s JOIN devices d ON d.id = s.device_id WHERE s.device_id = $1`, device).
		Scan(&st.Time, &st.AppliedGeneration, &doc, &st.Hostname, &st.AgentVersion, &st.Interfaces)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Status{}, fmt.Errorf("status of device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return store.Status{}, fmt.Errorf("read status of device %s: %w", device, err)
	}
	st.Time, st.Interfaces, st.Document = st.Time.UTC(), nonNil(st.Interfaces), []byte(doc)
	return st, nil
}

// ListStatuses implements store.Statuses.
func (s *Store) ListStatuses(ctx context.Context) (map[string]store.Status, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.device_id, s.received_at, s.applied_generation, s.document::text, d.hostname, d.agent_version, d.interfaces
		FROM statuses s JOIN devices d ON d.id = s.device_id`)
	if err != nil {
		return nil, fmt.Errorf("list statuses: %w", err)
	}
	defer rows.Close()
	out := map[string]store.Status{}
	for rows.Next() {
		var (
			id, doc string
			st      store.Status
		)
		if err := rows.Scan(&id, &st.Time, &st.AppliedGeneration, &doc, &st.Hostname, &st.AgentVersion, &st.Interfaces); err != nil {
			return nil, fmt.Errorf("list statuses: %w", err)
		}
		st.Time, st.Interfaces, st.Document = st.Time.UTC(), nonNil(st.Interfaces), []byte(doc)
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list statuses: %w", err)
	}
	return out, nil
}
