package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ringtap/ringtap/pkg/console/store"
)

// TestPragmas checks the connections' settings: WAL, busy timeout and
// foreign keys on both pools, one writer, query-only readers.
func TestPragmas(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), DefaultFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool of %d connections, want 1", n)
	}
	tests := []struct {
		pool   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"writer", s.w, "journal_mode", "wal"},
		{"writer", s.w, "busy_timeout", "10000"},
		{"writer", s.w, "foreign_keys", "1"},
		{"writer", s.w, "synchronous", "1"}, // NORMAL
		{"writer", s.w, "query_only", "0"},
		{"reader", s.r, "journal_mode", "wal"},
		{"reader", s.r, "busy_timeout", "10000"},
		{"reader", s.r, "foreign_keys", "1"},
		{"reader", s.r, "query_only", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.pool+"/"+tt.pragma, func(t *testing.T) {
			var got string
			if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
	// Foreign keys hold: no certificate of a device that is not there.
	_, err = s.w.Exec(`INSERT INTO certificates (serial, device_id, public_key_fingerprint, not_before, not_after, der) VALUES ('1', 'nosuchdevice', 'fp', 0, 1, x'00')`)
	if err == nil {
		t.Error("a certificate of an unknown device was stored")
	}
}
