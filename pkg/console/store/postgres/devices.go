package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
)

const deviceColumns = `id, hostname, machine_id, agent_version, interfaces, enrolled_at, cert_serial, cert_not_after, last_heartbeat, revoked_at`

// scanDevice reads the deviceColumns of a row.
func (s *Store) scanDevice(row pgx.Row, now time.Time) (store.Device, error) {
	var (
		d           store.Device
		hb, revoked *time.Time
	)
	if err := row.Scan(&d.ID, &d.Hostname, &d.MachineID, &d.AgentVersion, &d.Interfaces, &d.EnrolledAt, &d.CertSerial, &d.CertNotAfter, &hb, &revoked); err != nil {
		return store.Device{}, err
	}
	d.Interfaces = nonNil(d.Interfaces)
	d.EnrolledAt, d.CertNotAfter = d.EnrolledAt.UTC(), d.CertNotAfter.UTC()
	d.LastHeartbeat, d.RevokedAt = utc(hb), utc(revoked)
	d.State = d.StateAt(now, s.opts.StaleAfter)
	return d, nil
}

// device reads one device.
func (s *Store) device(ctx context.Context, q querier, id string, now time.Time) (store.Device, error) {
	d, err := s.scanDevice(q.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id), now)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// GetDevice implements store.Devices.
func (s *Store) GetDevice(ctx context.Context, id string, now time.Time) (store.Device, error) {
	return s.device(ctx, s.pool, id, now)
}

// ListDevices implements store.Devices.
func (s *Store) ListDevices(ctx context.Context, now time.Time) ([]store.Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM devices ORDER BY hostname, id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	ds := []store.Device{}
	for rows.Next() {
		d, err := s.scanDevice(rows, now)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// DuplicateMachineIDs implements store.Devices.
func (s *Store) DuplicateMachineIDs(ctx context.Context) ([]store.Duplicate, error) {
	rows, err := s.pool.Query(ctx, `SELECT machine_id, array_agg(id ORDER BY enrolled_at, id) FROM devices
		WHERE revoked_at IS NULL AND machine_id <> ''
		GROUP BY machine_id HAVING COUNT(*) > 1 ORDER BY machine_id`)
	if err != nil {
		return nil, fmt.Errorf("list duplicate machine ids: %w", err)
	}
	defer rows.Close()
	dups := []store.Duplicate{}
	for rows.Next() {
		var d store.Duplicate
		if err := rows.Scan(&d.MachineID, &d.DeviceIDs); err != nil {
			return nil, fmt.Errorf("list duplicate machine ids: %w", err)
		}
		dups = append(dups, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list duplicate machine ids: %w", err)
	}
	return dups, nil
}

// RevokeDevice implements store.Devices.
func (s *Store) RevokeDevice(ctx context.Context, id string, now time.Time) (store.Device, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, now, id); err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	d, err := s.device(ctx, tx, id, now)
	if err != nil {
		return store.Device{}, fmt.Errorf("revoke: %w", err)
	}
	if err := notify(ctx, tx, id); err != nil {
		return store.Device{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	return d, nil
}
