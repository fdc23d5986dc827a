package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/feed"
)

// desiredConfig reads a device's desired config and whether the device is
// revoked; forUpdate locks the config's row.
func desiredConfig(ctx context.Context, q querier, device string, forUpdate bool) (store.DesiredConfig, bool, error) {
	var (
		dc               store.DesiredConfig
		updated, revoked *time.Time
	)
	query := `SELECT g.generation, g.captures, g.updated_at, d.jobs_seq, d.revoked_at
		FROM desired_configs g JOIN devices d ON d.id = g.device_id WHERE g.device_id = $1`
	if forUpdate {
		query += ` FOR UPDATE OF g`
	}
	err := q.QueryRow(ctx, query, device).Scan(&dc.Generation, &dc.Captures, &updated, &dc.JobsSeq, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.DesiredConfig{}, false, fmt.Errorf("desired config: device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return store.DesiredConfig{}, false, fmt.Errorf("read desired config of device %s: %w", device, err)
	}
	dc.Captures = nonNil(dc.Captures)
	dc.UpdatedAt = utc(updated)
	return dc, revoked != nil, nil
}

// GetCaptures implements store.Configs.
func (s *Store) GetCaptures(ctx context.Context, device string) (store.DesiredConfig, error) {
	dc, _, err := desiredConfig(ctx, s.pool, device, false)
	return dc, err
}

// ListGenerations implements store.Configs.
func (s *Store) ListGenerations(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT device_id, generation FROM desired_configs`)
	if err != nil {
		return nil, fmt.Errorf("list generations: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var gen int64
		if err := rows.Scan(&id, &gen); err != nil {
			return nil, fmt.Errorf("list generations: %w", err)
		}
		out[id] = gen
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list generations: %w", err)
	}
	return out, nil
}

// PutCaptures implements store.Configs. The config's row is locked for
// the transaction, so of two puts with the same ifMatch, on any consoles,
// one succeeds and the other is ErrStaleGeneration.
func (s *Store) PutCaptures(ctx context.Context, device string, ifMatch int64, captures []store.Capture, now time.Time) (store.DesiredConfig, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	defer tx.Rollback(context.Background())
	cur, revoked, err := desiredConfig(ctx, tx, device, true)
	switch {
	case err != nil:
		return store.DesiredConfig{}, fmt.Errorf("put captures: %w", err)
	case revoked:
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, store.ErrRevoked)
	case ifMatch != store.AnyGeneration && ifMatch != cur.Generation:
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s at generation %d: it is at %d: %w", device, ifMatch, cur.Generation, store.ErrStaleGeneration)
	}
	if _, err := tx.Exec(ctx, `UPDATE desired_configs SET generation = $1, captures = $2, updated_at = $3 WHERE device_id = $4`,
		cur.Generation+1, nonNil(captures), now, device); err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	dc, _, err := desiredConfig(ctx, tx, device, false)
	if err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures: %w", err)
	}
	if err := notify(ctx, tx, device); err != nil {
		return store.DesiredConfig{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	return dc, nil
}

// WaitForChange implements store.Configs: the notifications of every
// Store on the database wake it.
func (s *Store) WaitForChange(ctx context.Context, device string, after int64) (store.DesiredConfig, error) {
	return s.WaitForChanges(ctx, device, after, feed.NoJobs)
}

// WaitForChanges implements store.Jobs: the notifications of every Store
// on the database (PutCaptures, RevokeDevice, CreateJob, CancelJob) wake
// it.
func (s *Store) WaitForChanges(ctx context.Context, device string, afterGen, afterJobs int64) (store.DesiredConfig, error) {
	return feed.Wait(ctx, &s.hub, device, afterGen, afterJobs, func(ctx context.Context) (store.DesiredConfig, bool, error) {
		return desiredConfig(ctx, s.pool, device, false)
	})
}
