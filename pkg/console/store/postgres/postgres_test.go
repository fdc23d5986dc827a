package postgres_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ringtap/ringtap/pkg/console/store"
	"github.com/ringtap/ringtap/pkg/console/store/postgres"
	"github.com/ringtap/ringtap/pkg/console/store/postgres/pgtest"
	"github.com/ringtap/ringtap/pkg/console/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var opts = store.Options{StaleAfter: storetest.StaleAfter}

// mustOpen opens a Store on url; t's cleanup closes it.
func mustOpen(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, pgtest.Start(t))
	})
}

// TestTwoConsoles runs two Stores on one database, as two console
// processes behind a load balancer.
func TestTwoConsoles(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		url := pgtest.Start(t)
		return mustOpen(t, url), mustOpen(t, url)
	})
}

// TestRestart runs the suite's restart tests: a console process stops and
// another starts on the database.
func TestRestart(t *testing.T) {
	storetest.RunRestart(t, func(t *testing.T) func() store.Store {
		url := pgtest.Start(t)
		return func() store.Store { return mustOpen(t, url) }
	})
}

// TestConcurrentMigrations: consoles starting together on a new database
// migrate it once.
func TestConcurrentMigrations(t *testing.T) {
	url := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), url, opts)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("console %d: %v", i, err)
		}
	}
	mustVersions(t, url, postgres.SchemaVersion())
}

// mustVersions checks schema_migrations holds versions 1 to n.
func mustVersions(t *testing.T, url string, n int) {
	t.Helper()
	conn := mustConnect(t, url)
	rows, err := conn.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_migrations %v, want versions 1 to %d", got, n)
		}
	}
	if len(got) != n {
		t.Fatalf("schema_migrations %v, want versions 1 to %d", got, n)
	}
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestSchemaTooNew(t *testing.T) {
	url := pgtest.Start(t)
	mustOpen(t, url).Close()
	if _, err := mustConnect(t, url).Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), url, opts)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open a database from a newer console: got %v, want ErrSchemaTooNew", err)
	}
	t.Logf("message: %v", err)
}

func TestBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://%zz", opts); err == nil {
		t.Error("open a bad url: no error")
	}
}

// TestFeedReconnects: when the listening connection is killed, the Store
// reconnects, and a change made meanwhile or after still wakes a waiter.
func TestFeedReconnects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := pgtest.Start(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	key := store.HashSecret(store.NewSecret())
	if err := a.CreateInstallKey(ctx, store.InstallKey{Hash: key, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	id := store.NewID()
	now := time.Now()
	_, _, err := a.ConsumeInstallKey(ctx, key, store.Enrollment{
		Device:      store.Device{ID: id, Hostname: "h"},
		Certificate: store.Certificate{Serial: "1", DeviceID: id, PublicKeyFingerprint: "sha256:00", NotBefore: now, NotAfter: now.Add(time.Hour), DER: []byte{1}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}

	kill := func() {
		t.Helper()
		var n int
		err := mustConnect(t, url).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n)
		if err != nil || n != 2 {
			t.Fatalf("terminate the listening connections: %d terminated, %v; want 2", n, err)
		}
	}
	for gen := int64(0); gen < 2; gen++ {
		done := make(chan error, 1)
		go func() {
			_, err := b.WaitForChange(ctx, id, gen)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		kill()
		if gen == 1 {
			time.Sleep(time.Second) // reconnected before the change
		}
		// gen 0: the change comes while the listener is away.
		if _, err := a.PutCaptures(ctx, id, gen, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("wait: %v", err)
			}
			t.Logf("woke %v after the change", time.Since(changed))
		case <-time.After(5 * time.Second):
			t.Fatalf("the waiter did not wake after the listener was killed (generation %d)", gen)
		}
	}
}
