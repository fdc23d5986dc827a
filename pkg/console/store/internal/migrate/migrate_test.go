package migrate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ringtap/ringtap/pkg/console/store"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []int
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"in order", []string{"0002_b.sql", "0001_a.sql", "0003_c.sql"}, []int{1, 2, 3}, ""},
		{"a gap", []string{"0001_a.sql", "0003_c.sql"}, nil, "want version 2"},
		{"twice", []string{"0001_a.sql", "0001_b.sql"}, nil, "want version 2"},
		{"from 2", []string{"0002_a.sql"}, nil, "want version 1"},
		{"no name", []string{"0001.sql"}, nil, "want NNNN_name.sql"},
		{"not a number", []string{"one_a.sql"}, nil, "want NNNN_name.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m/README": {Data: []byte("not a migration")}}
			for _, f := range tt.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("-- " + f)}
			}
			ms, err := Load(fsys, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
				if !strings.Contains(m.SQL, m.Name) {
					t.Errorf("migration %d: SQL %q of another file", m.Version, m.SQL)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("versions %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("versions %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestPending(t *testing.T) {
	ms := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	for cur, want := range []int{3, 2, 1, 0} {
		got, err := Pending(ms, cur, "db")
		if err != nil || len(got) != want || (want > 0 && got[0].Version != cur+1) {
			t.Errorf("at version %d: %d pending (%v), want %d from %d", cur, len(got), err, want, cur+1)
		}
	}
	if _, err := Pending(ms, 4, "db"); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Errorf("at version 4: got %v, want ErrSchemaTooNew", err)
	}
}
