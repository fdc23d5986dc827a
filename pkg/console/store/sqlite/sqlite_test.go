package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/sqlite"
	"github.com/ringtap/ringtap/pkg/console/store/storetest"
)

var opts = store.Options{StaleAfter: storetest.StaleAfter}

// mustOpen opens the database at path; t's cleanup closes it.
func mustOpen(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), sqlite.DefaultFile))
	})
}

// TestRestart runs the suite's restart tests: the console closes the file
// and opens it again.
func TestRestart(t *testing.T) {
	storetest.RunRestart(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), sqlite.DefaultFile)
		return func() store.Store { return mustOpen(t, path) }
	})
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.DefaultFile)
	s := mustOpen(t, path)
	if err := s.CreateAdminToken(context.Background(), store.AdminToken{Hash: store.HashSecret("x"), Name: "x"}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", e.Name(), m)
		}
	}
	if !strings.Contains(strings.Join(names, " "), sqlite.DefaultFile+"-wal") {
		t.Errorf("files %v: no -wal file (not in WAL mode?)", names)
	}
}

func TestOneProcessPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.DefaultFile)
	s := mustOpen(t, path)
	_, err := sqlite.Open(context.Background(), path, opts)
	if err == nil || !strings.Contains(err.Error(), "in use by another ringtap-console") {
		t.Fatalf("second open of one file: got %v, want it refused as in use", err)
	}
	s.Close()
	mustOpen(t, path) // the lock went with the first
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.DefaultFile)
	s := mustOpen(t, path)
	h := store.HashSecret("tok")
	if err := s.CreateAdminToken(ctx, store.AdminToken{Hash: h, Name: "admin"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, path)
	if err := s.CheckAdminToken(ctx, h); err != nil {
		t.Errorf("token after reopening: %v", err)
	}
	s.Close()
	mustVersions(t, path, sqlite.SchemaVersion())
}

// mustVersions checks schema_migrations holds versions 1 to n.
func mustVersions(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != n {
		t.Fatalf("schema_migrations %v, want versions 1 to %d", got, n)
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_migrations %v, want versions 1 to %d", got, n)
		}
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.DefaultFile)
	mustOpen(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)`, sqlite.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = sqlite.Open(context.Background(), path, opts)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open a database from a newer console: got %v, want ErrSchemaTooNew", err)
	}
	t.Logf("message: %v", err)
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "/tmp/a?mode=memory"} {
		if _, err := sqlite.Open(context.Background(), p, opts); err == nil {
			t.Errorf("open %q: no error", p)
		}
	}
}
