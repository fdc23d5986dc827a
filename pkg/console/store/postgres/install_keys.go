package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateInstallKey implements store.InstallKeys.
func (s *Store) CreateInstallKey(ctx context.Context, k store.InstallKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO install_keys (hash, created_at, expires_at, note) VALUES ($1, $2, $3, $4)`,
		k.Hash[:], k.CreatedAt, k.ExpiresAt, k.Note)
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
	rows, err := s.pool.Query(ctx, `SELECT hash, created_at, expires_at, note, used_at, COALESCE(used_by, ''), COALESCE(device_id, '')
		FROM install_keys ORDER BY created_at DESC, hash`)
	if err != nil {
		return nil, fmt.Errorf("list install keys: %w", err)
	}
	defer rows.Close()
	keys := []store.InstallKey{}
	for rows.Next() {
		var (
			k    store.InstallKey
			hash []byte
			used *time.Time
		)
		if err := rows.Scan(&hash, &k.CreatedAt, &k.ExpiresAt, &k.Note, &used, &k.UsedBy, &k.DeviceID); err != nil {
			return nil, fmt.Errorf("list install keys: %w", err)
		}
		copy(k.Hash[:], hash)
		k.CreatedAt, k.ExpiresAt, k.UsedAt = k.CreatedAt.UTC(), k.ExpiresAt.UTC(), utc(used)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list install keys: %w", err)
	}
	return keys, nil
}

// ConsumeInstallKey implements store.InstallKeys. The key's row is
// locked (FOR UPDATE) for the transaction, so of consoles racing on one
// key, one enrolls and the others see it used once it commits.
func (s *Store) ConsumeInstallKey(ctx context.Context, hash store.Hash, e store.Enrollment, now time.Time) (store.Enrollment, bool, error) {
	if err := e.Validate(); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	fp := e.Certificate.PublicKeyFingerprint
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	defer tx.Rollback(context.Background())
	var (
		expires                time.Time
		used                   *time.Time
		usedBy, device, serial *string
	)
	err = tx.QueryRow(ctx, `SELECT expires_at, used_at, used_by, device_id, cert_serial FROM install_keys WHERE hash = $1 FOR UPDATE`, hash[:]).
		Scan(&expires, &used, &usedBy, &device, &serial)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrNotFound)
	}
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	if used != nil {
		if usedBy == nil || *usedBy != fp || now.Sub(*used) > store.EnrollRetryWindow || device == nil || serial == nil {
			return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrKeyUsed)
		}
		got, err := s.enrollment(ctx, tx, *device, *serial, now)
		if err != nil {
			return store.Enrollment{}, false, fmt.Errorf("replay enrollment: %w", err)
		}
		if !got.Device.RevokedAt.IsZero() {
			return store.Enrollment{}, false, fmt.Errorf("replay enrollment of device %s: %w", got.Device.ID, store.ErrRevoked)
		}
		return got, true, nil
	}
	if !now.Before(expires) {
		return store.Enrollment{}, false, fmt.Errorf("consume install key %s: %w", hash, store.ErrKeyExpired)
	}

	d, c := e.Device, e.Certificate
	_, err = tx.Exec(ctx, `INSERT INTO devices (id, hostname, machine_id, agent_version, interfaces, enrolled_at, cert_serial, cert_not_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, d.ID, d.Hostname, d.MachineID, d.AgentVersion, nonNil(d.Interfaces), now, c.Serial, c.NotAfter)
	if isUnique(err) {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, store.ErrExists)
	}
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if err := insertCertificate(ctx, tx, c); err != nil {
		return store.Enrollment{}, false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO desired_configs (device_id, generation, captures) VALUES ($1, 0, '[]')`, d.ID); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE install_keys SET used_at = $1, used_by = $2, device_id = $3, cert_serial = $4 WHERE hash = $5`,
		now, fp, d.ID, c.Serial, hash[:]); err != nil {
		return store.Enrollment{}, false, fmt.Errorf("consume install key: %w", err)
	}
	got, err := s.enrollment(ctx, tx, d.ID, c.Serial, now)
	if err != nil {
		return store.Enrollment{}, false, fmt.Errorf("enroll device %s: %w", d.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
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
