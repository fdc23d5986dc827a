package console

import (
	"context"
	"errors"
	"path/filepath"
	"strings"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres"
	"github.com/ringtap/ringtap/pkg/console/store/sqlite"
)

// DBFile is the SQLite file in the data directory, the default store.
const DBFile = "console.db"

// IsPostgres reports whether db selects PostgreSQL (postgres:// or
// postgresql://).
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// OpenStore opens the store db selects: SQLite at dataDir/DBFile when db
// is empty, PostgreSQL for a postgres:// or postgresql:// URL.
func OpenStore(ctx context.Context, dataDir, db string, opts store.Options) (store.Store, error) {
	switch {
	case db == "":
		s, err := sqlite.Open(ctx, filepath.Join(dataDir, DBFile), opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	case IsPostgres(db):
		s, err := postgres.Open(ctx, db, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, ErrBadDB
}

// ErrBadDB is a --db that selects no store.
var ErrBadDB = errors.New("--db takes a postgres:// or postgresql:// URL; leave it out for SQLite in the data directory")
