package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// PutStatus implements store.Statuses. A heartbeat older than the one
// stored does not replace it.
func (s *Store) PutStatus(ctx context.Context, device string, st store.Status) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	var ifaces sql.NullString
	if st.Interfaces != nil {
		text, err := jsonText(st.Interfaces)
		if err != nil {
			return err
		}
		ifaces = sql.NullString{String: text, Valid: true}
	}
	// Every heartbeat: the statements are prepared once (Store.stmt).
	var stmts [len(putStatusQueries)]*sql.Stmt
	for i, q := range putStatusQueries {
		prepared, err := s.stmt(ctx, s.w, q)
		if err != nil {
			return fmt.Errorf("put status of device %s: %w", device, err)
		}
		stmts[i] = prepared
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	defer tx.Rollback()
	var revoked sql.NullInt64
	err = tx.StmtContext(ctx, stmts[0]).QueryRowContext(ctx, device).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("put status: device %s: %w", device, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("put status of device %s: %w", device, err)
	case revoked.Valid:
		return fmt.Errorf("put status of device %s: %w", device, store.ErrRevoked)
	}
	res, err := tx.StmtContext(ctx, stmts[1]).ExecContext(ctx, device, ns(st.Time), st.AppliedGeneration, string(st.Document))
	if err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // an older heartbeat: nothing to do
	}
	if _, err := tx.StmtContext(ctx, stmts[2]).ExecContext(ctx, ns(st.Time), st.Hostname, st.AgentVersion, ifaces, device); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put status of device %s: %w", device, err)
	}
	return nil
}

// putStatusQueries are PutStatus's statements: the device's revocation,
// the status row, the device's last heartbeat and identity.
var putStatusQueries = [...]string{
	`SELECT revoked_at FROM devices WHERE id = ?`,
	`INSERT INTO statuses (device_id, received_at, applied_generation, document) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET received_at = excluded.received_at,
			applied_generation = excluded.applied_generation, document = excluded.document
		WHERE statuses.received_at <= excluded.received_at`,
	`UPDATE devices SET last_heartbeat = ?,
			hostname = COALESCE(NULLIF(?, ''), hostname), agent_version = COALESCE(NULLIF(?, ''), agent_version),
			interfaces = COALESCE(?, interfaces)
		WHERE id = ?`,
}

// GetStatus implements store.Statuses.
func (s *Store) GetStatus(ctx context.Context, device string) (store.Status, error) {
	var (
		st       store.Status
		received int64
		doc      string
		ifaces   string
	)
	err := s.r.QueryRowContext(ctx, `SELECT s.received_at, s.applied_generation, s.document, d.hostname, d.agent_version, d.interfaces
		FROM statuses s JOIN devices d ON d.id = s.device_id WHERE s.device_id = ?`, device).
		Scan(&received, &st.AppliedGeneration, &doc, &st.Hostname, &st.AgentVersion, &ifaces)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Status{}, fmt.Errorf("status of device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return store.Status{}, fmt.Errorf("read status of device %s: %w", device, err)
	}
	if err := json.Unmarshal([]byte(ifaces), &st.Interfaces); err != nil {
		return store.Status{}, fmt.Errorf("device %s interfaces: %w", device, err)
	}
	st.Time, st.Document = fromNS(received), json.RawMessage(doc)
	return st, nil
}

// ListStatuses implements store.Statuses.
func (s *Store) ListStatuses(ctx context.Context) (map[string]store.Status, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT s.device_id, s.received_at, s.applied_generation, s.document, d.hostname, d.agent_version, d.interfaces
		FROM statuses s JOIN devices d ON d.id = s.device_id`)
	if err != nil {
		return nil, fmt.Errorf("list statuses: %w", err)
	}
	defer rows.Close()
	out := map[string]store.Status{}
	for rows.Next() {
		var (
			id, doc, ifaces string
			received        int64
			st              store.Status
		)
		if err := rows.Scan(&id, &received, &st.AppliedGeneration, &doc, &st.Hostname, &st.AgentVersion, &ifaces); err != nil {
			return nil, fmt.Errorf("list statuses: %w", err)
		}
		if err := json.Unmarshal([]byte(ifaces), &st.Interfaces); err != nil {
			return nil, fmt.Errorf("device %s interfaces: %w", id, err)
		}
		st.Time, st.Document = fromNS(received), json.RawMessage(doc)
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list statuses: %w", err)
	}
	return out, nil
}
