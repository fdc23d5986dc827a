package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/internal/feed"
)

// DefaultFile is the database's name in the console's data directory.
const DefaultFile = "console.db"

// busyTimeoutMS is how long a connection waits for a lock before
// SQLITE_BUSY.
const busyTimeoutMS = 10000

// readConns is how many connections read at once (WAL lets readers run
// beside the writer).
const readConns = 4

// Store is a store.Store on one SQLite file.
type Store struct {
	path string
	opts store.Options
	w    *sql.DB // one connection: every write
	r    *sql.DB // reads outside write transactions
	lock *os.File
	hub  feed.Hub

	// stmts holds the prepared statements of the hottest queries (every
	// agent request's certificate lookup, every heartbeat), by database
	// and query: modernc's SQLite compiles a statement in Go, and
	// compiling them anew took a fifth of the console's CPU with 1,000
	// agents (see stmt).
	stmts sync.Map // stmtKey -> *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// stmt returns query prepared on db, preparing it the first time. Only
// constant queries come here, so the cache stays small. database/sql
// prepares it again on each connection of db as it needs, and closes it
// with db.
func (s *Store) stmt(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	if st, ok := s.stmts.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if old, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

var _ store.Store = (*Store)(nil)

// ErrInUse is a database file another process (a serving console) holds
// open: one process per file.
var ErrInUse = errors.New("sqlite database is in use by another ringtap-console")

// Open opens the database file at path, creating it (mode 0600) when
// missing, and migrates it to the schema this binary knows.
func Open(ctx context.Context, path string, opts store.Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite database %q: give a file path without ? or #", path)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: opts.WithDefaults(), lock: lock}
	if err := s.open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite database: %w", err)
	}
	f.Close()
	// SQLite creates the -wal and -shm files with the database's mode.
	if err := os.Chmod(s.path, 0o600); err != nil {
		return fmt.Errorf("open sqlite database: %w", err)
	}
	if s.w, err = sql.Open("sqlite", dsn(s.path, false)); err != nil {
		return fmt.Errorf("open sqlite database %s: %w", s.path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	// Migrating first makes the file WAL before a reader opens it.
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if s.r, err = sql.Open("sqlite", dsn(s.path, true)); err != nil {
		return fmt.Errorf("open sqlite database %s: %w", s.path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("open sqlite database %s: %w", s.path, err)
	}
	return nil
}

// dsn is the driver's name for path: writers begin IMMEDIATE, readers are
// query only.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Close closes the database and ends WaitForChange calls. Closing twice
// is safe.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.hub.Close()
		var errs []error
		for _, db := range []*sql.DB{s.r, s.w} {
			if db != nil {
				errs = append(errs, db.Close())
			}
		}
		if s.lock != nil {
			errs = append(errs, s.lock.Close()) // releases the lock
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite database %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
