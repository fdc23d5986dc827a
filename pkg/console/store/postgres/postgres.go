package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/feed"
)

// NotifyChannel is the LISTEN/NOTIFY channel of desired config changes;
// the payload is the device id.
const NotifyChannel = "ringtap_desired_config"

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	opts   store.Options
	log    *slog.Logger
	pool   *pgxpool.Pool
	config *pgx.ConnConfig // of the listening connection
	hub    feed.Hub

	stop      context.CancelFunc
	done      chan struct{} // closed when the listener has returned
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// DefaultMaxConns is the size of the connection pool when the URL does
// not set pool_max_conns. Heartbeats and config changes are short
// transactions that wait on their commit's WAL flush: with pgx's default
// (4 connections on a 2-CPU machine) a console took 646 heartbeats a
// second, with 16 it took 1,092, side by side (BENCHMARKS.md, "The
// console under load").
const DefaultMaxConns = 16

// Open connects to the database at url (postgres://...), migrates it to
// the schema this binary knows, and starts listening for changes.
func Open(ctx context.Context, url string, opts store.Options) (*Store, error) {
	opts = opts.WithDefaults()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns=") {
		pcfg.MaxConns = DefaultMaxConns
	}
	s := &Store{opts: opts, log: opts.Logger, config: pcfg.ConnConfig.Copy(), done: make(chan struct{})}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	// Listen before returning, so that no change made after Open is
	// missed.
	conn, err := s.listenConn(ctx)
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	lctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.listen(lctx, conn)
	return s, nil
}

// Close stops listening, ends WaitForChange calls and closes the
// connections. Closing twice is safe.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.hub.Close()
		s.stop()
		<-s.done
		s.pool.Close()
	})
	return nil
}

// listenConn connects the dedicated connection and listens on it.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.config)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres to listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("listen on %s: %w", NotifyChannel, err)
	}
	return conn, nil
}

// listen wakes the waiters of each device notified, until ctx ends. It
// reconnects a lost connection, then wakes every waiter.
func (s *Store) listen(ctx context.Context, conn *pgx.Conn) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			s.hub.Notify(n.Payload)
			continue
		}
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres change feed lost, reconnecting", "err", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if conn, err = s.listenConn(ctx); err == nil {
				break
			}
			backoff = min(2*backoff, 5*time.Second)
			s.log.Warn("postgres change feed: reconnect", "err", err, "retry_in", backoff)
		}
		backoff = 100 * time.Millisecond
		s.log.Info("postgres change feed reconnected")
		s.hub.NotifyAll() // what changed meanwhile
	}
}

// notify sends the change of device, delivered when tx commits.
func notify(ctx context.Context, tx pgx.Tx, device string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, device); err != nil {
		return fmt.Errorf("notify change of device %s: %w", device, err)
	}
	return nil
}

// isUnique says whether err is a unique violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// utc is t in UTC, zero for nil.
func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nonNil returns ss, never nil.
func nonNil[T any](ss []T) []T {
	if ss == nil {
		return []T{}
	}
	return ss
}
