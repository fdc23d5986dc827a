package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// CreateInstallKey implements store.InstallKeys.
func (s *Store) CreateInstallKey(ctx context.Context, k store.InstallKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO install_keys (hash, created_at, expires_at, note) VALUES (?, ?, ?, ?)`,
		k.Hash[:], ns(k.CreatedAt), ns(k.ExpiresAt), k.Note)
	if isUnique(err) {
		return fmt.Errorf("create install key %s: %w", k.Hash, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create install key: %w", err)
	}
	return nil
}

// ListInstallKeys implements store.InstallKeys.
func (s *Store) ListInstallKeys(ctx context.Context) ([]store.InstallKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash, created_at, expires_at, note, used_at, COALESCE(used_by, ''), COALESCE(device_id, '')
		FROM install_keys ORDER BY created_at DESC, hash`)
	if err != nil {
		return nil, fmt.Errorf("list install keys: %w", err)
	}
	defer rows.Close()
	keys := []store.InstallKey{}
	for rows.Next() {
		var (
			k                store.InstallKey
			hash             []byte
			created, expires int64
			used             sql.NullInt64
		)
		if err := rows.Scan(&hash, &created, &expires, &k.Note, &used, &k.UsedBy, &k.DeviceID); err != nil {
			return nil, fmt.Errorf("list install keys: %w", err)
		}
		copy(k.Hash[:], hash)
		k.CreatedAt, k.ExpiresAt, k.UsedAt = fromNS(created), fromNS(expires), fromNullNS(used)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list install keys: %w", err)
	}
	return keys, nil
}

// ConsumeInstallKey implements store.InstallKeys. The write transaction
// (BEGIN IMMEDIATE, one writer) makes it atomic.
func (s *Store) ConsumeInstallKey(ctx context.Context, hash store.Hash, e store.Enrollment, now time.Time) (store.Enrollment, bool, error) {
	if err := e.Validate(); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	fp := e.Certificate.PublicKeyFingerprint
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	defer tx.Rollback()
	var (
		expires                int64
		used                   sql.NullInt64
		usedBy, device, serial sql.NullString
	)
	err = tx.QueryRowContext(ctx, `SELECT expires_at, used_at, used_by, device_id, cert_serial FROM install_keys WHERE hash = ?`, hash[:]).
		Scan(&expires, &used, &usedBy, &device, &serial)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	if used.Valid {
		if usedBy.String != fp || now.Sub(fromNS(used.Int64)) > store.EnrollRetryWindow {
			return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrKeyUsed)
		}
		got, err := s.enrollment(ctx, tx, device.String, serial.String, now)
		if err != nil {
			return store.Enrollment{}, false, fmt.Errorf("replay enrollment: %w", err)
		}
		if !got.Device.RevokedAt.IsZero() {
			return store.Enrollment{}, false, fmt.Errorf("replay enrollment of device %s: %w", got.Device.ID, store.ErrRevoked)
		}
		return got, true, nil
	}
	if !now.Before(fromNS(expires)) {
		return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrKeyExpired)
	}

	d, c := e.Device, e.Certificate
	ifaces, err := jsonText(nonNil(d.Interfaces))
	if err != nil {
		return store.Enrollment{}, false, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, hostname, machine_id, agent_version, interfaces, enrolled_at, cert_serial, cert_not_after)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.Hostname, d.MachineID, d.AgentVersion, ifaces, ns(now), c.Serial, ns(c.NotAfter))
	if isUnique(err) {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, store.ErrExists)
	}
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if err := insertCertificate(ctx, tx, c); err != nil {
		return store.Enrollment{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO desired_configs (device_id, generation, captures) VALUES (?, 0, '[]')`, d.ID); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE install_keys SET used_at = ?, used_by = ?, device_id = ?, cert_serial = ? WHERE hash = ?`,
		ns(now), fp, d.ID, c.Serial, hash[:]); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	got, err := s.enrollment(ctx, tx, d.ID, c.Serial, now)
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	return got, false, nil
}

// enrollment reads a device and a certificate of it.
func (s *Store) enrollment(ctx context.Context, q querier, device, serial string, now time.Time) (store.Enrollment, error) {
	d, err := s.device(ctx, q, device, now)
	if err != nil {
		return store.Enrollment{}, err
	}
	c, _, err := certificate(ctx, q, serial)
	if err != nil {
		return store.Enrollment{}, err
	}
	return store.Enrollment{Device: d, Certificate: c}, nil
}
