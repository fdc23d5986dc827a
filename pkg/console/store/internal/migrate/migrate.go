// Package migrate reads a backend's embedded migrations and decides which
// to apply; the backend applies them in its own transaction.
package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// Migration is one schema version: the file NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads the *.sql files of dir in fsys. Their versions must run 1,
// 2, 3... without a gap.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []Migration
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d (versions run 1, 2, 3... without a gap)", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}

// Pending returns the migrations above current, the schema version of the
// database (0 for a new one), or ErrSchemaTooNew when current is above
// the newest migration this binary has.
func Pending(ms []Migration, current int, db string) ([]Migration, error) {
	if current > len(ms) {
		return nil, fmt.Errorf("%s has schema version %d but this ringtap-console knows versions up to %d: run the ringtap-console release that migrated it, or a newer one: %w", db, current, len(ms), store.ErrSchemaTooNew)
	}
	return ms[current:], nil
}
