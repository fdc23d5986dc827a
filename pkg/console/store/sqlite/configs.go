package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/feed"
)

// desiredConfig reads a device's desired config and whether the device is
// revoked.
func desiredConfig(ctx context.Context, q querier, device string) (store.DesiredConfig, bool, error) {
	var (
		dc       store.DesiredConfig
		captures string
		updated  sql.NullInt64
		revoked  sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT g.generation, g.captures, g.updated_at, d.jobs_seq, d.revoked_at
		FROM desired_configs g JOIN devices d ON d.id = g.device_id WHERE g.device_id = ?`, device).
		Scan(&dc.Generation, &captures, &updated, &dc.JobsSeq, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.DesiredConfig{}, false, fmt.Errorf("desired config: device %s: %w", device, store.ErrNotFound)
	}
	if err != nil {
		return store.DesiredConfig{}, false, fmt.Errorf("read desired config of device %s: %w", device, err)
	}
	if err := json.Unmarshal([]byte(captures), &dc.Captures); err != nil {
		return store.DesiredConfig{}, false, fmt.Errorf("desired config of device %s: %w", device, err)
	}
	dc.Captures = nonNil(dc.Captures)
	dc.UpdatedAt = fromNullNS(updated)
	return dc, revoked.Valid, nil
}

// GetCaptures implements store.Configs.
func (s *Store) GetCaptures(ctx context.Context, device string) (store.DesiredConfig, error) {
	dc, _, err := desiredConfig(ctx, s.r, device)
	return dc, err
}

// ListGenerations implements store.Configs.
func (s *Store) ListGenerations(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT device_id, generation FROM desired_configs`)
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

// PutCaptures implements store.Configs.
func (s *Store) PutCaptures(ctx context.Context, device string, ifMatch int64, captures []store.Capture, now time.Time) (store.DesiredConfig, error) {
	text, err := jsonText(nonNil(captures))
	if err != nil {
		return store.DesiredConfig{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	defer tx.Rollback()
	cur, revoked, err := desiredConfig(ctx, tx, device)
	switch {
	case err != nil:
		return store.DesiredConfig{}, fmt.Errorf("put captures: %w", err)
	case revoked:
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, store.ErrRevoked)
	case ifMatch != store.AnyGeneration && ifMatch != cur.Generation:
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s at generation %d: it is at %d: %w", device, ifMatch, cur.Generation, store.ErrStaleGeneration)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE desired_configs SET generation = ?, captures = ?, updated_at = ? WHERE device_id = ?`,
		cur.Generation+1, text, ns(now), device); err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	dc, _, err := desiredConfig(ctx, tx, device)
	if err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.DesiredConfig{}, fmt.Errorf("put captures of device %s: %w", device, err)
	}
	s.hub.Notify(device)
	return dc, nil
}

// WaitForChange implements store.Configs: PutCaptures and RevokeDevice
// of this Store wake it (one process owns the file).
func (s *Store) WaitForChange(ctx context.Context, device string, after int64) (store.DesiredConfig, error) {
	return s.WaitForChanges(ctx, device, after, feed.NoJobs)
}

// WaitForChanges implements store.Jobs: PutCaptures, RevokeDevice,
// CreateJob and CancelJob of this Store wake it.
func (s *Store) WaitForChanges(ctx context.Context, device string, afterGen, afterJobs int64) (store.DesiredConfig, error) {
	return feed.Wait(ctx, &s.hub, device, afterGen, afterJobs, func(ctx context.Context) (store.DesiredConfig, bool, error) {
		return desiredConfig(ctx, s.r, device)
	})
}
