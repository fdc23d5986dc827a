package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

const deviceColumns = `id, hostname, machine_id, agent_version, interfaces, enrolled_at, cert_serial, cert_not_after, last_heartbeat, revoked_at`

// scanDevice reads the deviceColumns of a row.
func (s *Store) scanDevice(row interface{ Scan(...any) error }, now time.Time) (store.Device, error) {
	var (
		d                  store.Device
		ifaces             string
		enrolled, notAfter int64
		hb, revoked        sql.NullInt64
	)
	if err := row.Scan(&d.ID, &d.Hostname, &d.MachineID, &d.AgentVersion, &ifaces, &enrolled, &d.CertSerial, &notAfter, &hb, &revoked); err != nil {
		return store.Device{}, err
	}
	if err := json.Unmarshal([]byte(ifaces), &d.Interfaces); err != nil {
		return store.Device{}, fmt.Errorf("device %s interfaces: %w", d.ID, err)
	}
	d.EnrolledAt, d.CertNotAfter = fromNS(enrolled), fromNS(notAfter)
	d.LastHeartbeat, d.RevokedAt = fromNullNS(hb), fromNullNS(revoked)
	d.State = d.StateAt(now, s.opts.StaleAfter)
	return d, nil
}

// device reads one device.
func (s *Store) device(ctx context.Context, q querier, id string, now time.Time) (store.Device, error) {
	d, err := s.scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id), now)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// GetDevice implements store.Devices.
func (s *Store) GetDevice(ctx context.Context, id string, now time.Time) (store.Device, error) {
	return s.device(ctx, s.r, id, now)
}

// ListDevices implements store.Devices.
func (s *Store) ListDevices(ctx context.Context, now time.Time) ([]store.Device, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices ORDER BY hostname, id`)
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
	rows, err := s.r.QueryContext(ctx, `SELECT machine_id, id FROM devices
		WHERE revoked_at IS NULL AND machine_id IN (
			SELECT machine_id FROM devices WHERE revoked_at IS NULL AND machine_id <> ''
			GROUP BY machine_id HAVING COUNT(*) > 1)
		ORDER BY machine_id, enrolled_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list duplicate machine ids: %w", err)
	}
	defer rows.Close()
	dups := []store.Duplicate{}
	for rows.Next() {
		var mid, id string
		if err := rows.Scan(&mid, &id); err != nil {
			return nil, fmt.Errorf("list duplicate machine ids: %w", err)
		}
		if n := len(dups); n == 0 || dups[n-1].MachineID != mid {
			dups = append(dups, store.Duplicate{MachineID: mid})
		}
		dups[len(dups)-1].DeviceIDs = append(dups[len(dups)-1].DeviceIDs, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list duplicate machine ids: %w", err)
	}
	return dups, nil
}

// RevokeDevice implements store.Devices.
func (s *Store) RevokeDevice(ctx context.Context, id string, now time.Time) (store.Device, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ns(now), id); err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	d, err := s.device(ctx, tx, id, now)
	if err != nil {
		return store.Device{}, fmt.Errorf("revoke: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Device{}, fmt.Errorf("revoke device %s: %w", id, err)
	}
	s.hub.Notify(id)
	return d, nil
}
