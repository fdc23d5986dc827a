package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// insertCertificate stores c.
func insertCertificate(ctx context.Context, q querier, c store.Certificate) error {
	_, err := q.ExecContext(ctx, `INSERT INTO certificates (serial, device_id, public_key_fingerprint, not_before, not_after, der)
		VALUES (?, ?, ?, ?, ?, ?)`, c.Serial, c.DeviceID, c.PublicKeyFingerprint, ns(c.NotBefore), ns(c.NotAfter), c.DER)
	if isUnique(err) {
		return fmt.Errorf("store certificate %s: %w", c.Serial, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store certificate %s: %w", c.Serial, err)
	}
	return nil
}

// certificate reads a certificate and whether its device is revoked.
func certificate(ctx context.Context, q querier, serial string) (store.Certificate, bool, error) {
	return scanCertificate(q.QueryRowContext(ctx, certificateQuery, serial), serial)
}

const certificateQuery = `SELECT c.serial, c.device_id, c.public_key_fingerprint, c.not_before, c.not_after, c.der, d.revoked_at
	FROM certificates c JOIN devices d ON d.id = c.device_id WHERE c.serial = ?`

// scanCertificate reads certificateQuery's row.
func scanCertificate(row *sql.Row, serial string) (store.Certificate, bool, error) {
	var (
		c                   store.Certificate
		notBefore, notAfter int64
		revoked             sql.NullInt64
	)
	err := row.Scan(&c.Serial, &c.DeviceID, &c.PublicKeyFingerprint, &notBefore, &notAfter, &c.DER, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Certificate{}, false, fmt.Errorf("certificate %s: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return store.Certificate{}, false, fmt.Errorf("read certificate %s: %w", serial, err)
	}
	c.NotBefore, c.NotAfter = fromNS(notBefore), fromNS(notAfter)
	return c, revoked.Valid, nil
}

// GetCertificate implements store.Certificates.
func (s *Store) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	st, err := s.stmt(ctx, s.r, certificateQuery) // every agent request
	if err != nil {
		return store.Certificate{}, fmt.Errorf("read certificate %s: %w", serial, err)
	}
	c, revoked, err := scanCertificate(st.QueryRowContext(ctx, serial), serial)
	if err != nil {
		return store.Certificate{}, err
	}
	if revoked {
		return c, fmt.Errorf("certificate %s of device %s: %w", serial, c.DeviceID, store.ErrRevoked)
	}
	return c, nil
}

// RenewCertificate implements store.Certificates.
func (s *Store) RenewCertificate(ctx context.Context, c store.Certificate) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("renew certificate of device %s: %w", c.DeviceID, err)
	}
	defer tx.Rollback()
	var (
		revoked sql.NullInt64
		fp      string
	)
	err = tx.QueryRowContext(ctx, `SELECT d.revoked_at, c.public_key_fingerprint
		FROM devices d JOIN certificates c ON c.serial = d.cert_serial WHERE d.id = ?`, c.DeviceID).Scan(&revoked, &fp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("renew certificate: device %s: %w", c.DeviceID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("renew certificate of device %s: %w", c.DeviceID, err)
	case revoked.Valid:
		return fmt.Errorf("renew certificate of device %s: %w", c.DeviceID, store.ErrRevoked)
	case fp != c.PublicKeyFingerprint:
		return fmt.Errorf("renew certificate of device %s: %s is not %s: %w", c.DeviceID, c.PublicKeyFingerprint, fp, store.ErrKeyMismatch)
	}
	if err := insertCertificate(ctx, tx, c); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET cert_serial = ?, cert_not_after = ? WHERE id = ?`, c.Serial, ns(c.NotAfter), c.DeviceID); err != nil {
		return fmt.Errorf("renew certificate of device %s: %w", c.DeviceID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("renew certificate of device %s: %w", c.DeviceID, err)
	}
	return nil
}
